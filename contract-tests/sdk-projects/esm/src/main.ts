// The program: the README's quick start (./quick-start.ts, extracted verbatim by the test),
// then a line the test waits for. Imported modules run first, top-level awaits included.
import "./quick-start.js";

console.log("quick start: done");
