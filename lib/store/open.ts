/**
 * The one entry point to the stores: which kinds there are, the settings
 * they read, and opening the one `STORE` names. A new kind of store is one
 * new file exporting its {@linkcode StoreKind} and one line in
 * {@linkcode STORE_KINDS}; nothing outside this folder names a store.
 *
 * @module
 */

import { MEMORY_KIND } from "./memory_kind.ts";
import { POSTGRES_KIND } from "./postgres_kind.ts";
import { SQLITE_KIND } from "./sqlite_kind.ts";
import type {
  OpenContext,
  OpenedStore,
  SettingValues,
  StoreKind,
  StoreSetting,
} from "./store_kind.ts";

export { integerIn, opened } from "./store_kind.ts";
export type {
  OpenContext,
  OpenedStore,
  StoreKind,
  StoreSetting,
} from "./store_kind.ts";

/** The kinds of store, in the order `STORE`'s help lists them. */
export const STORE_KINDS = [MEMORY_KIND, SQLITE_KIND, POSTGRES_KIND] as const;

type UnionToIntersection<U> =
  // deno-lint-ignore no-explicit-any
  (U extends any ? (union: U) => void : never) extends
    (intersection: infer I) => void ? I
    : never;

/** Every setting any kind reads, by name, with its value's type. */
export type StoreSettings = UnionToIntersection<
  SettingValues<(typeof STORE_KINDS)[number]["settings"]>
>;

/** Every kind's settings, each with the name its kind reads it under. */
export function storeSettings(
  kinds: readonly StoreKind[] = STORE_KINDS,
): Array<StoreSetting<unknown> & { key: string }> {
  return kinds.flatMap((kind) =>
    Object.entries(kind.settings).map(([key, setting]) => ({
      ...setting,
      key,
    }))
  );
}

/** The kind of store `spec` names, if any. */
export function storeKindOf(
  spec: string,
  kinds: readonly StoreKind[] = STORE_KINDS,
): StoreKind | undefined {
  return kinds.find((kind) => kind.matches(spec));
}

/** What `STORE` accepts, every kind's form. */
export function acceptedStores(
  kinds: readonly StoreKind[] = STORE_KINDS,
): string {
  const forms = kinds.map((kind) => kind.accepts);
  return forms.length < 2
    ? forms.join("")
    : `${forms.slice(0, -1).join(", ")}, or ${forms.at(-1)}`;
}

/**
 * Opens the store `spec` names, with the settings its kind reads (a
 * setting not given takes its default).
 *
 * @throws {StoreOpenError} when the store cannot be opened.
 * @throws {RangeError} when no kind of store has that name.
 */
export async function openStore(
  spec: string,
  settings: object,
  kinds: readonly StoreKind[] = STORE_KINDS,
  context: OpenContext = {},
): Promise<OpenedStore> {
  const kind = storeKindOf(spec, kinds);
  if (kind === undefined) {
    throw new RangeError(`Cannot open store: unknown kind "${spec}"`);
  }
  const given = settings as Readonly<Record<string, unknown>>;
  const values: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(kind.settings)) {
    values[key] = key in given ? given[key] : setting.defaultValue;
  }
  return await kind.open(spec, values, context);
}
