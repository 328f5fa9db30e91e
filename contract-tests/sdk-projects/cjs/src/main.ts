// The program: the README's quick start (./quick-start.ts: the README's block, its body wrapped
// in an async function by the test, since CommonJS has no top-level await), then a line the
// test waits for.
import { done } from "./quick-start.js";

done.then(
  () => console.log("quick start: done"),
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
