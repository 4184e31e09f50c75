/**
 * Files the service serves from memory: pages' scripts and styles, imported
 * as text into the program so that `deno compile` carries them.
 *
 * @module
 */

import type { Context } from "hono";

/** One file: its text and its media type. */
export interface Asset {
  body: string;
  type: string;
}

/** The media type of scripts. */
export const JAVASCRIPT = "text/javascript; charset=utf-8";
/** The media type of style sheets. */
export const CSS = "text/css; charset=utf-8";

/**
 * A handler for `…/:file` that answers the asset of that name, or 404.
 * A Map, not an object literal: a lookup of "constructor" or "__proto__" in
 * an object finds what every object inherits.
 */
export function assetHandler(
  assets: ReadonlyMap<string, Asset>,
  cacheControl: string,
) {
  return (c: Context) => {
    const asset = assets.get(c.req.param("file") ?? "");
    if (!asset) return c.notFound();
    return c.body(asset.body, 200, {
      "content-type": asset.type,
      "cache-control": cacheControl,
    });
  };
}
