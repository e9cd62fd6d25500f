import { readFileSync } from "node:fs";

export interface VectorCase {
  name: string;
  check: "x-signature" | "standard-webhooks";
  body_base64: string;
  headers: Record<string, string>;
  api_token: string | null;
  secrets: string[];
  now: number;
  tolerance_s: number;
  expected: { valid: boolean; reason: string | null };
}

/** The shared vectors, clients/test-vectors.json. */
export const vectors: { cases: VectorCase[] } = JSON.parse(
  readFileSync(new URL("../../../test-vectors.json", import.meta.url), "utf8"),
);
