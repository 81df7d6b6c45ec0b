import type { z } from "zod";
import { RelayError } from "./errors.js";

function describe(value: unknown): string {
  const type = value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
  let shown: string;
  try {
    shown = typeof value === "function" ? "[function]" : String(JSON.stringify(value));
  } catch {
    shown = String(value);
  }
  return `\`${shown}\` (${type})`;
}

/**
 * Validates an options object at construction and returns it with defaults applied.
 * Throws one message shape for every primitive:
 * ``Expected `maxAttempts` to be an integer >= 1, got `0` (number)``.
 * @throws RelayError `invalid_option`
 */
export function parseOptions<S extends z.ZodType>(
  schema: S,
  input: unknown,
  owner: string,
): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.join(".");
  let value: unknown = input;
  for (const key of issue.path) {
    value =
      value && typeof value === "object" ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  }
  throw new RelayError(
    "invalid_option",
    `${owner}: Expected \`${path || "options"}\` to be ${expectation(issue)}, got ${describe(value)}`,
    { path },
  );
}

function expectation(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "too_small":
      return `${issue.origin === "number" ? "a number" : issue.origin} >= ${String(issue.minimum)}`;
    case "too_big":
      return `${issue.origin === "number" ? "a number" : issue.origin} <= ${String(issue.maximum)}`;
    case "invalid_type":
      return issue.expected === "int" ? "an integer" : `a ${issue.expected}`;
    default:
      return issue.message.replace(/^Invalid input: expected /, "");
  }
}

/** Checks an integer option (cheap path for hot constructors that skip zod). */
export function assertInteger(owner: string, name: string, value: unknown, min: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new RelayError(
      "invalid_option",
      `${owner}: Expected \`${name}\` to be an integer >= ${min}, got ${describe(value)}`,
      { path: name },
    );
  }
  return value;
}
