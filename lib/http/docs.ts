/**
 * The API description: `/openapi.json`, and an interactive reference page
 * at `/docs` whose scripts and styles come from the `swagger-ui-dist` npm
 * package and are served by the service itself — no other host is asked
 * for anything, and the compiled executable carries them too.
 *
 * @module
 */

import { Hono } from "hono";
import swaggerBundle from "swagger-ui-dist/swagger-ui-bundle.js" with {
  type: "text",
};
import swaggerCss from "swagger-ui-dist/swagger-ui.css" with { type: "text" };
import { type Asset, assetHandler, CSS, JAVASCRIPT } from "./assets.ts";
import {
  type DocContext,
  json,
  type PathItems,
  problemResponse,
} from "./openapi_parts.ts";

/** The content security policy of the reference page: this origin only. */
export const DOCS_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

const INIT_SCRIPT = `window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>order-service API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" href="data:,">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body>
</html>
`;

const ASSETS = new Map<string, Asset>([
  ["swagger-ui.css", { body: swaggerCss, type: CSS }],
  ["swagger-ui-bundle.js", { body: swaggerBundle, type: JAVASCRIPT }],
  ["init.js", { body: INIT_SCRIPT, type: JAVASCRIPT }],
]);

/** Creates `/openapi.json`, `/docs` and `/docs/assets/:file`. */
export function docsRoutes(
  options: { document: () => Record<string, unknown> },
) {
  let cached: string | undefined;
  return new Hono()
    .get("/openapi.json", (c) => {
      // The document is the same for the life of the process.
      cached ??= JSON.stringify(options.document());
      return c.body(cached, 200, { "content-type": "application/json" });
    })
    .get("/docs", (c) => c.html(PAGE))
    .get(
      "/docs/assets/:file",
      assetHandler(ASSETS, "public, max-age=3600"),
    );
}

/**
 * The OpenAPI operations of `/openapi.json`, `/docs` and its assets.
 */
export function docsDocs(ctx: DocContext): PathItems {
  return {
    "/openapi.json": {
      get: {
        operationId: "openApi",
        tags: ["operations"],
        summary: "This document",
        ...ctx.open,
        responses: {
          "200": {
            description: "OpenAPI 3.1",
            content: json({ type: "object" }),
          },
        },
      },
    },
    "/docs": {
      get: {
        operationId: "docs",
        tags: ["operations"],
        summary:
          "Interactive API reference (Swagger UI, served by the service itself)",
        ...ctx.open,
        responses: {
          "200": {
            description: "An HTML page",
            content: { "text/html": { schema: { type: "string" } } },
          },
        },
      },
    },
    "/docs/assets/{file}": {
      get: {
        operationId: "docsAsset",
        tags: ["operations"],
        summary: "The reference page's scripts and styles",
        ...ctx.open,
        parameters: [{
          name: "file",
          in: "path",
          required: true,
          schema: { type: "string" },
        }],
        responses: {
          "200": { description: "A script or style sheet" },
          "404": problemResponse("No such file"),
        },
      },
    },
  };
}
