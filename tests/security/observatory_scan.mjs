// observatory_scan.mjs — run the MDN HTTP Observatory scanner (library API) against a
// local HTTPS URL, print the result and check it. Called by observatory_check.sh.
//
// usage: node observatory_scan.mjs PACKAGE_DIR URL [EXPECTED_GRADE]
//   PACKAGE_DIR  the installed node_modules/@mdn/mdn-http-observatory
//   URL          https://HOST[:PORT][/]  (the scanner always fetches "/")
//   EXPECTED_GRADE  default "A+"
// Run it with NODE_EXTRA_CA_CERTS=<the server's certificate>, or the scanner falls back
// to an unverified connection and grades the site down (hsts-invalid-cert, -20).
//
// Why a wrapper and not the package's CLI: its bin (bin/wrapper.js) overwrites
// NODE_EXTRA_CA_CERTS with the Mozilla bundle, so our self-signed certificate would not
// be trusted. The library's scan(hostname) builds its URLs as "https://" + hostname and
// "http://" + hostname, so "localhost:8443" scans https://localhost:8443/ and probes plain
// HTTP on that same port (src/retriever/url.js). retrieve() has httpPort/httpsPort options
// but scan() does not pass options through (src/scanner/index.js, v1.4.8).
import path from "node:path";
import { pathToFileURL } from "node:url";
import { readFileSync } from "node:fs";

const [pkgDir, urlArg, expectedGrade = "A+"] = process.argv.slice(2);
if (!pkgDir || !urlArg) {
  console.error("usage: node observatory_scan.mjs PACKAGE_DIR URL [EXPECTED_GRADE]");
  process.exit(2);
}
const TIMEOUT_MS = Number(process.env.KURA_OBSERVATORY_SCAN_TIMEOUT_MS ?? 60000);
const say = (s) => console.log(`observatory_check: ${s}`);

let url;
try {
  url = new URL(urlArg);
} catch {
  console.error(`observatory_check: FAIL: not a URL: ${urlArg}`);
  process.exit(2);
}
if (url.protocol !== "https:" || (url.pathname !== "/" && url.pathname !== "") || url.search) {
  console.error(`observatory_check: FAIL: URL must be https://HOST[:PORT]/ (the scanner always scans "/"), got ${urlArg}`);
  process.exit(2);
}
const target = url.port ? `${url.hostname}:${url.port}` : url.hostname;

const pkg = JSON.parse(readFileSync(path.join(pkgDir, "package.json"), "utf8"));
const { scan } = await import(pathToFileURL(path.join(pkgDir, pkg.main ?? "src/index.js")).href);
say(`scanner ${pkg.name}@${pkg.version}; scanning https://${target}/ (plain-HTTP probe: http://${target}/); ` +
    `NODE_EXTRA_CA_CERTS=${process.env.NODE_EXTRA_CA_CERTS ?? "(unset)"}`);

const started = Date.now();
let result;
try {
  result = await Promise.race([
    scan(target),
    new Promise((_, reject) => setTimeout(() => reject(new Error(`scan timed out after ${TIMEOUT_MS} ms`)), TIMEOUT_MS).unref()),
  ]);
} catch (e) {
  console.error(`observatory_check: FAIL: scan error: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
}
const { scan: s, tests } = result;
say(`scan took ${Date.now() - started} ms: HTTP ${s.statusCode}, score ${s.score}, grade ${s.grade}, ` +
    `tests passed ${s.testsPassed}/${s.testsQuantity} (algorithm v${s.algorithmVersion})`);

const strip = (h) => String(h ?? "").replace(/<[^>]*>/g, "").replace(/\s+/g, " ").trim();
const lines = Object.entries(tests).map(([name, t]) => {
  const mod = t.scoreModifier > 0 ? `+${t.scoreModifier}` : `${t.scoreModifier}`;
  return { name, t, line: `  ${t.pass ? "pass" : "FAIL"} ${name.padEnd(30)} ${mod.padStart(4)}  ${t.result}` };
});
say("per-test results (modifier, result):");
for (const l of lines) console.log(l.line);

const problems = [];
if (s.grade !== expectedGrade) {
  problems.push(`grade ${s.grade} (score ${s.score}), expected ${expectedGrade}`);
}
for (const { name, t } of lines) {
  if (!t.pass) problems.push(`test ${name} failed: ${t.result}: ${strip(t.scoreDescription)}`);
}
const hsts = tests["strict-transport-security"];
if (hsts?.result === "hsts-invalid-cert") {
  problems.push("the scanner did not trust the server certificate: run with NODE_EXTRA_CA_CERTS=<server cert PEM>, " +
                "the certificate must be valid for the URL's host name");
}

// Kura's header policy beyond what the observatory grades (it ignores these three).
const h = s.responseHeaders ?? {};
const get = (k) => h[k.toLowerCase()];
const extra = [
  ["cross-origin-opener-policy", (v) => v === "same-origin", "same-origin"],
  ["permissions-policy", (v) => typeof v === "string" && v.trim() !== "", "present"],
  ["cache-control", (v) => typeof v === "string" && /(^|,)\s*no-store\s*(,|$)/i.test(v), "contains no-store"],
];
for (const [name, ok, want] of extra) {
  if (!ok(get(name))) problems.push(`header ${name} must be ${want}, got ${JSON.stringify(get(name) ?? null)}`);
}
say(`also checked (not graded by the observatory): ${extra.map(([n, , w]) => `${n} ${w}`).join(", ")}`);

if (problems.length) {
  for (const p of problems) console.log(`observatory_check: REJECTED ${p}`);
  say("response headers of GET /:");
  for (const [k, v] of Object.entries(h)) console.log(`  ${k}: ${v}`);
  console.log(`observatory_check: FAIL: ${problems.length} problem(s)`);
  process.exit(1);
}
say(`grade ${s.grade} (score ${s.score}) as expected; all ${s.testsQuantity} tests passed`);
