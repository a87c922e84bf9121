// The entry chunk: it loads the greeting and the catalog on demand, each
// as a chunk of its own.
import { render } from "./render.js";

import("./greeting.js").then(({ greeting }) => render("greeting", greeting("visitor")));
import("./catalog.js").then(({ catalog }) => render("catalog", catalog.map((p) => p.name).join(", ")));
