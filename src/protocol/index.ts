export * from "./parse.js";
export * from "./schemas.js";
export { protocolJsonSchema } from "./json-schema.js";
