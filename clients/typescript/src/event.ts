/** Parsing a verified body into the typed payload of its `notification` name. */
import { EVENT_NAMES, type KnownEvent } from "./events.js";

/** An event whose name this version of the kit does not know yet, kept whole. */
export class UnknownEvent {
  constructor(
    readonly notification: string,
    readonly payload: Record<string, unknown>,
  ) {}
}

/** The body is not a JSON object with a `notification` name. */
export class MalformedEventError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MalformedEventError";
  }
}

export type ChargewireEvent = KnownEvent | UnknownEvent;

const KNOWN: ReadonlySet<string> = new Set(EVENT_NAMES);

/**
 * The typed payload of `body`; narrow it with `event instanceof UnknownEvent`, then `event.notification`.
 * Only the name is checked, so a field the catalog adds later reaches you instead of breaking the parse.
 */
export function parseEvent(body: Uint8Array | string): ChargewireEvent {
  let payload: unknown;
  try {
    payload = JSON.parse(typeof body === "string" ? body : Buffer.from(body).toString("utf8"));
  } catch {
    throw new MalformedEventError("the body is not JSON");
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    throw new MalformedEventError("the body is not a JSON object");
  }
  const name = (payload as { notification?: unknown }).notification;
  if (typeof name !== "string") throw new MalformedEventError("the body has no notification name");
  return KNOWN.has(name) ? (payload as KnownEvent) : new UnknownEvent(name, payload as Record<string, unknown>);
}
