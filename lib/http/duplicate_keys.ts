/**
 * Finding duplicate member names in JSON text.
 *
 * @module
 */

/**
 * Returns the first member name that appears twice in one object of
 * `text`, or `undefined`. `text` must already be valid JSON (parse it
 * first): the scan relies on that and checks nothing else.
 *
 * Why: `JSON.parse` keeps the last of two equal names while other parsers
 * keep the first, so a body with duplicates can mean one order to us and
 * another to a proxy or audit log in front of us. We refuse such bodies.
 *
 * @example
 * ```ts
 * import { findDuplicateKey } from "./duplicate_keys.ts";
 * findDuplicateKey('{"a":1,"a":2}'); // "a"
 * findDuplicateKey('{"a":{"a":1}}'); // undefined
 * ```
 */
export function findDuplicateKey(text: string): string | undefined {
  // One entry per open container: the names seen so far in an object, or
  // null for an array.
  const open: Array<Set<string> | null> = [];
  let expectingName = false;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code === 0x22 /* " */) {
      let end = index + 1;
      let escaped = false;
      while (text.charCodeAt(end) !== 0x22) {
        if (text.charCodeAt(end) === 0x5c /* \ */) {
          escaped = true;
          end += 2;
        } else end++;
      }
      const names = open.at(-1);
      if (expectingName && names) {
        // Compare decoded names: "a" and "\u0061" are the same member.
        const name = escaped
          ? JSON.parse(text.slice(index, end + 1)) as string
          : text.slice(index + 1, end);
        if (names.has(name)) return name;
        names.add(name);
        expectingName = false;
      }
      index = end;
    } else if (code === 0x7b /* { */) {
      open.push(new Set());
      expectingName = true;
    } else if (code === 0x5b /* [ */) {
      open.push(null);
      expectingName = false;
    } else if (code === 0x7d /* } */ || code === 0x5d /* ] */) {
      open.pop();
      expectingName = false;
    } else if (code === 0x2c /* , */) {
      expectingName = open.at(-1) != null;
    }
  }
  return undefined;
}
