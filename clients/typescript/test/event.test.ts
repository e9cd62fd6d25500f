import assert from "node:assert/strict";
import { test } from "node:test";
import { EVENT_NAMES, MalformedEventError, UnknownEvent, parseEvent } from "../src/index.js";

test("a known name parses into its typed payload", () => {
  const event = parseEvent('{"notification":"NetworkStatusNotification","chargePointId":1042,"networkStatus":"available"}');
  assert.ok(!(event instanceof UnknownEvent));
  if (event.notification === "NetworkStatusNotification") assert.equal(event.chargePointId, 1042);
  else assert.fail(`parsed as ${event.notification}`);
});

test("an unknown name is kept as an UnknownEvent", () => {
  const event = parseEvent('{"notification":"charger.teleported","chargePointId":7}');
  assert.ok(event instanceof UnknownEvent);
  assert.deepEqual(event.payload, { notification: "charger.teleported", chargePointId: 7 });
});

test("a body without a notification name is malformed", () => {
  for (const body of ["not json", "[1]", '{"chargePointId":7}', '{"notification":3}']) {
    assert.throws(() => parseEvent(body), MalformedEventError);
  }
});

test("every catalog name is known", () => {
  assert.equal(EVENT_NAMES.length, 40);
});
