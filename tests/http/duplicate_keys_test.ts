import assert from "node:assert/strict";
import { fc } from "../deps.ts";
import { findDuplicateKey } from "../../lib/http/duplicate_keys.ts";

Deno.test("findDuplicateKey() finds a name repeated in one object, at any depth", () => {
  assert.equal(findDuplicateKey('{"a":1,"b":2,"a":3}'), "a");
  assert.equal(findDuplicateKey('[{"x":[{"k":1,"k":2}]}]'), "k");
  assert.equal(
    findDuplicateKey('{"a":1,"\\u0061":2}'),
    "a",
    "escaped names are decoded",
  );
});

Deno.test("findDuplicateKey() accepts equal names in different objects and names inside strings", () => {
  assert.equal(
    findDuplicateKey('{"a":{"a":1},"b":[{"a":2},{"a":3}]}'),
    undefined,
  );
  assert.equal(
    findDuplicateKey('{"a":"\\"a\\":1","b":"{\\"a\\"}"}'),
    undefined,
  );
  assert.equal(findDuplicateKey('["a","a",{"a":1}]'), undefined);
});

Deno.test("findDuplicateKey() agrees with JSON.parse on any JSON without duplicates (property)", () => {
  fc.assert(
    fc.property(fc.json(), (text) => {
      assert.equal(findDuplicateKey(text), undefined);
    }),
    { numRuns: 500 },
  );
});

Deno.test("findDuplicateKey() finds a duplicate injected into any object (property)", () => {
  fc.assert(
    fc.property(
      fc.dictionary(fc.string(), fc.jsonValue(), { minKeys: 1, maxKeys: 5 }),
      (object) => {
        const [name] = Object.keys(object);
        // A function replacement: a name like "$&" must not be read as a pattern.
        const text = JSON.stringify(object).replace(
          /}$/,
          () => `,${JSON.stringify(name)}:null}`,
        );
        assert.equal(findDuplicateKey(text), name);
      },
    ),
    { numRuns: 300 },
  );
});
