export { protocolJsonSchema } from "./json-schema.js";
export * from "./parse.js";
export * from "./schemas.js";
