// Starts Swagger UI on /openapi.json. A file, not an inline script, so the page's CSP needs no
// 'unsafe-inline' for scripts. The options are FastAPI's defaults, except that the online
// validator badge is off: it would call validator.swagger.io.
"use strict";
window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
