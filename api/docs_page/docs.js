// Renders the operations of /docs from the OpenAPI document with Swagger UI, whose bundle
// (a classic script, loaded with `defer`) has run before this module. Nothing is sent to
// the API from the page: "Try it out" is off, since every request must be signed, and
// the online validator badge is off, since the page must not reach any other origin.
const root = document.getElementById("operations");

window.SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  domNode: root,
  validatorUrl: null,
  supportedSubmitMethods: [],
  tryItOutEnabled: false,
  deepLinking: false,
  docExpansion: "list",
  defaultModelsExpandDepth: 0,
});
