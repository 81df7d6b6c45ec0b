/** Service discovery: the NodeRegistry port, its in-memory implementation, and the Discovery heartbeater. */
export * from "./discovery.js";
export * from "./node-registry.js";
