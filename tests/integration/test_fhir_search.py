"""FHIR search over real TLS: parameter types, modifiers, prefixes, chains, includes, sorting,
paging that stays correct while data changes, blind indexes (no names in the database file),
and the audit record of a search."""

import json
import os
import time
import unittest
import urllib.parse

from harness import FHIR, SharedServerTestCase, random_marker


def obs(patient_id, code, value, when, system="http://loinc.org", status="final"):
    return {
        "resourceType": "Observation",
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org",
                          "code": "/min"},
    }


class SearchTest(SharedServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.marker = random_marker().lower().replace("-", "")
        cls.family = "Zoë" + cls.marker.capitalize()
        cls.patients = []
        for i, (family, given, birth) in enumerate([
                (cls.family, "Anna", "1970-03-04"),
                ("Müller" + cls.marker, "Bernd", "1980-05-06"),
                ("Other" + cls.marker, "Clara", "1990-07-08")]):
            r = cls.srv.request("POST", f"{FHIR}/Patient", {
                "resourceType": "Patient",
                "identifier": [{"system": "urn:kura:test:mrn", "value": f"MRN{cls.marker}{i}"}],
                "name": [{"family": family, "given": [given]}],
                "gender": "female" if i != 1 else "male",
                "birthDate": birth})
            assert r.status == 201, r
            cls.patients.append(r.json()["id"])
        cls.observations = []
        for i, pid in enumerate(cls.patients):
            for code, value, when in [
                    ("8867-4", 60 + i, f"2024-01-0{i + 1}T10:00:00Z"),
                    ("8480-6", 120 + i, f"2024-02-0{i + 1}T10:00:00Z"),
                    ("8867-4", 70 + i, f"2024-03-0{i + 1}T10:00:00Z")]:
                r = cls.srv.request("POST", f"{FHIR}/Observation", obs(pid, code, value, when))
                assert r.status == 201, r
                cls.observations.append(r.json()["id"])

    def search(self, type_, query, status=200, headers=None):
        r = self.srv.request("GET", f"{FHIR}/{type_}?{query}", headers=headers)
        self.assertEqual(r.status, status, r.text)
        return r.json()

    def ids(self, bundle, mode="match"):
        return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]

    def test_token_reference_and_combined(self):
        p0 = self.patients[0]
        b = self.search("Observation", f"subject=Patient/{p0}&code=http://loinc.org|8867-4")
        self.assertEqual(b["resourceType"], "Bundle")
        self.assertEqual(b["type"], "searchset")
        self.assertEqual(len(self.ids(b)), 2)
        for e in b["entry"]:
            self.assertEqual(e["resource"]["subject"]["reference"], f"Patient/{p0}")
            self.assertEqual(e["resource"]["code"]["coding"][0]["code"], "8867-4")
            self.assertTrue(e["fullUrl"].endswith("/Observation/" + e["resource"]["id"]))
        self.assertEqual(b["total"], 2)
        # Code without system, |code (no system) and a bare id for the reference.
        self.assertEqual(len(self.ids(self.search("Observation", f"subject={p0}&code=8867-4"))), 2)
        self.assertEqual(self.ids(self.search("Observation", f"subject={p0}&code=|8867-4")), [])
        self.assertEqual(len(self.ids(self.search(
            "Observation", f"subject:Patient={p0}&code=8867-4,8480-6"))), 3)

    def test_dates_quantities_and_prefixes(self):
        p1 = self.patients[1]
        q = f"subject=Patient/{p1}"
        self.assertEqual(len(self.ids(self.search("Observation", q + "&date=2024-01"))), 1)
        self.assertEqual(len(self.ids(self.search("Observation", q + "&date=ge2024-02-01"))), 2)
        self.assertEqual(len(self.ids(self.search("Observation", q + "&date=lt2024-02"))), 1)
        self.assertEqual(len(self.ids(self.search("Observation", q + "&date=2024"))), 3)
        self.assertEqual(len(self.ids(self.search("Observation",
                                                  q + "&value-quantity=gt100"))), 1)
        self.assertEqual(len(self.ids(self.search(
            "Observation", q + "&value-quantity=61|http://unitsofmeasure.org|/min"))), 1)
        self.assertEqual(len(self.ids(self.search("Observation", q + "&value-quantity=61.0"))), 1)
        self.assertEqual(len(self.ids(self.search("Observation", q + "&value-quantity=ne61"))), 2)
        b = self.search("Observation", q + "&code-value-quantity=" +
                        urllib.parse.quote("http://loinc.org|8480-6$gt120"))
        self.assertEqual(len(self.ids(b)), 1)

    def test_quantities_in_ucum_units_compare_across_units(self):
        r = self.srv.request("POST", f"{FHIR}/Patient", {"resourceType": "Patient"})
        self.assertEqual(r.status, 201, r.text)
        pid = r.json()["id"]
        ucum = "http://unitsofmeasure.org"

        def post(code, value, unit):
            body = obs(pid, code, value, "2024-07-01T08:00:00Z")
            body["valueQuantity"] = {"value": value, "unit": unit, "system": ucum, "code": unit}
            r = self.srv.request("POST", f"{FHIR}/Observation", body)
            self.assertEqual(r.status, 201, r.text)
            return r.json()["id"]

        kg = post("29463-7", 72.5, "kg")
        grams = post("29463-7", 72500, "g")
        pounds = post("29463-7", 160, "[lb_av]")
        fever = post("8310-5", 101.3, "[degF]")
        normal = post("8310-5", 36.8, "Cel")

        def found(code, value):
            query = f"subject={pid}&code={code}&value-quantity=" + urllib.parse.quote(value)
            return sorted(self.ids(self.search("Observation", query)))

        self.assertEqual(found("29463-7", f"72.5|{ucum}|kg"), sorted([kg, grams]))
        self.assertEqual(found("29463-7", f"72500|{ucum}|g"), sorted([kg, grams]))
        self.assertEqual(found("29463-7", f"gt72.5|{ucum}|kg"), [pounds])
        self.assertEqual(found("29463-7", f"ge160.0|{ucum}|[lb_av]"), [pounds])
        self.assertEqual(found("8310-5", f"gt38|{ucum}|Cel"), [fever])
        self.assertEqual(found("8310-5", f"lt99|{ucum}|[degF]"), [normal])
        self.assertEqual(found("29463-7", f"72.5|{ucum}|m"), [])
        # Without the UCUM system the value compares as written.
        self.assertEqual(found("29463-7", "72500"), [grams])
        # An update re-indexes the base value in the same commit.
        body = obs(pid, "29463-7", 80, "2024-07-01T08:00:00Z")
        body["id"] = grams
        body["valueQuantity"] = {"value": 80000, "unit": "g", "system": ucum, "code": "g"}
        self.assertEqual(self.srv.request("PUT", f"{FHIR}/Observation/{grams}", body).status, 200)
        self.assertEqual(found("29463-7", f"72.5|{ucum}|kg"), [kg])
        self.assertEqual(found("29463-7", f"80|{ucum}|kg"), [grams])

    def test_blind_string_search_is_case_and_accent_insensitive_prefix(self):
        for query in [f"family={urllib.parse.quote(self.family)}",
                      "family=zoe" + self.marker[:4],
                      "name=ZOE" + self.marker[:6].upper(),
                      f"family:exact={urllib.parse.quote(self.family)}"]:
            self.assertEqual(self.ids(self.search("Patient", query)), [self.patients[0]], query)
        self.assertEqual(self.ids(self.search("Patient", "family:exact=zoe" + self.marker)), [])
        # :contains on a blind parameter is refused with an OperationOutcome.
        oo = self.search("Patient", "family:contains=oe", status=400)
        self.assertEqual(oo["resourceType"], "OperationOutcome")
        self.assertNotIn("oe", oo["issue"][0]["diagnostics"].split("'")[0])

    def test_blind_identifier_birthdate_and_clear_gender(self):
        self.assertEqual(self.ids(self.search(
            "Patient", f"identifier=urn:kura:test:mrn|MRN{self.marker}1")), [self.patients[1]])
        self.assertEqual(self.ids(self.search("Patient", f"identifier=MRN{self.marker}2")),
                         [self.patients[2]])
        got = self.ids(self.search("Patient", f"birthdate=1980&family=m%C3%BCller{self.marker}"))
        self.assertEqual(got, [self.patients[1]])
        self.search("Patient", "birthdate=gt1980", status=400)
        self.assertIn(self.patients[1], self.ids(self.search(
            "Patient", f"gender=male&_id={','.join(self.patients)}")))

    def test_chain_include_revinclude_and_missing(self):
        b = self.search("Observation",
                        f"subject:Patient.name=other{self.marker}&code=8480-6&_include=Observation:subject")
        self.assertEqual(len(self.ids(b)), 1)
        self.assertEqual(self.ids(b, "include"), [self.patients[2]])
        b = self.search("Patient", f"_id={self.patients[0]}&_revinclude=Observation:subject")
        self.assertEqual(self.ids(b), [self.patients[0]])
        self.assertEqual(len(self.ids(b, "include")), 3)
        b = self.search("Observation", f"subject={self.patients[0]}&status:missing=false")
        self.assertEqual(len(self.ids(b)), 3)
        self.assertEqual(self.ids(self.search(
            "Observation", f"subject={self.patients[0]}&status:not=final")), [])

    def test_sort_count_and_paging_follow_changes(self):
        p2 = self.patients[2]
        b = self.search("Observation", f"subject={p2}&_sort=-date&_count=2")
        first = [e["resource"]["effectiveDateTime"] for e in b["entry"]]
        self.assertEqual(first, sorted(first, reverse=True))
        links = {l["relation"]: l["url"] for l in b["link"]}
        self.assertIn("next", links)
        self.assertNotIn("previous", links)
        # Paging links carry no search values.
        self.assertNotIn(p2, links["next"])
        # A new match sorting before the cursor does not shift the next page.
        r = self.srv.request("POST", f"{FHIR}/Observation",
                             obs(p2, "8867-4", 99, "2030-01-01T00:00:00Z"))
        self.assertEqual(r.status, 201)
        path = links["next"][links["next"].index("/fhir/R4"):]
        page2 = self.srv.request("GET", path)
        self.assertEqual(page2.status, 200, page2.text)
        page2 = page2.json()
        rest = [e["resource"]["effectiveDateTime"] for e in page2["entry"]]
        # Patient 2 had three: the new one sorts before the cursor and is not on this page.
        self.assertEqual(len(first) + len(rest), 3)
        self.assertTrue(all(x < first[-1] for x in rest))
        prev = {l["relation"]: l["url"] for l in page2["link"]}.get("previous")
        self.assertIsNotNone(prev)
        back = self.srv.request("GET", prev[prev.index("/fhir/R4"):]).json()
        self.assertEqual([e["resource"]["effectiveDateTime"] for e in back["entry"]], first)
        # A tampered token is refused.
        bad = self.srv.request("GET", path[:-4] + ("AAAA" if not path.endswith("AAAA") else "BBBB"))
        self.assertEqual(bad.status, 400)
        self.srv.request("DELETE", f"{FHIR}/Observation/{r.json()['id']}")

    def test_paging_keeps_values_with_reserved_characters(self):
        # The token carries the query: a system|code value (':', '/', '|') must come back exact.
        p0 = self.patients[0]
        query = urllib.parse.urlencode({"subject": f"Patient/{p0}",
                                        "code": "http://loinc.org|8867-4",
                                        "_sort": "date", "_count": "1"})
        pages = []
        b = self.search("Observation", query)
        while True:
            pages.append([e["resource"]["effectiveDateTime"] for e in b["entry"]])
            links = {l["relation"]: l["url"] for l in b["link"]}
            if "next" not in links:
                break
            self.assertNotIn("loinc", links["next"])
            r = self.srv.request("GET", links["next"][links["next"].index("/fhir/R4"):])
            self.assertEqual(r.status, 200, r.text)
            b = r.json()
        self.assertEqual(pages, [["2024-01-01T10:00:00Z"], ["2024-03-01T10:00:00Z"]])

    def test_summary_count_total_elements_and_post_search(self):
        p0 = self.patients[0]
        b = self.search("Observation", f"subject={p0}&_summary=count")
        self.assertEqual(b["total"], 3)
        self.assertNotIn("entry", b)
        b = self.search("Observation", f"subject={p0}&_elements=code&_count=1&_total=accurate")
        self.assertEqual(b["total"], 3)
        res = b["entry"][0]["resource"]
        self.assertIn("code", res)
        self.assertNotIn("subject", res)
        self.assertIn("SUBSETTED", json.dumps(res["meta"]))
        r = self.srv.request("POST", f"{FHIR}/Observation/_search",
                             body=f"subject={p0}&code=8480-6".encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(len(self.ids(r.json())), 1)

    def test_unknown_parameters_ignored_or_strict(self):
        b = self.search("Observation", f"subject={self.patients[0]}&bogus=1")
        self_link = [l["url"] for l in b["link"] if l["relation"] == "self"][0]
        self.assertNotIn("bogus", self_link)
        self.search("Observation", "bogus=1", status=400, headers={"Prefer": "handling=strict"})

    def test_updates_reindex_and_deletes_leave_search(self):
        pid = self.patients[0]
        r = self.srv.request("POST", f"{FHIR}/Observation",
                             obs(pid, "29463-7", 80, "2024-06-01T00:00:00Z"))
        oid = r.json()["id"]
        self.assertEqual(self.ids(self.search("Observation", f"subject={pid}&code=29463-7")), [oid])
        body = obs(pid, "3141-9", 81, "2024-06-01T00:00:00Z")
        body["id"] = oid
        self.assertEqual(self.srv.request("PUT", f"{FHIR}/Observation/{oid}", body).status, 200)
        self.assertEqual(self.ids(self.search("Observation", f"subject={pid}&code=29463-7")), [])
        self.assertEqual(self.ids(self.search("Observation", f"subject={pid}&code=3141-9")), [oid])
        self.assertEqual(self.srv.request("DELETE", f"{FHIR}/Observation/{oid}").status, 204)
        self.assertEqual(self.ids(self.search("Observation", f"subject={pid}&code=3141-9")), [])

    def test_search_is_audited(self):
        self.search("Observation", f"subject={self.patients[1]}&code=8867-4")
        r = self.srv.request("GET", f"/audit/v1/records?action=search&patient={self.patients[1]}")
        self.assertEqual(r.status, 200, r.text)
        self.assertTrue(r.json()["records"], "no audit record of the search")

    def test_everything_pages_stay_correct_while_the_record_changes(self):
        # A patient of its own with six Observations, read two at a time. After the first page,
        # one of its entries is deleted and a resource that sorts first is added: keyset pages
        # neither skip nor repeat the others.
        r = self.srv.request("POST", f"{FHIR}/Patient", {"resourceType": "Patient"})
        self.assertEqual(r.status, 201, r.text)
        pid = r.json()["id"]
        ids = []
        for i in range(6):
            c = self.srv.request("POST", f"{FHIR}/Observation",
                                 obs(pid, "8867-4", 60 + i, "2024-06-01T00:00:00Z"))
            self.assertEqual(c.status, 201, c.text)
            ids.append(c.json()["id"])

        def page(url):
            b = self.srv.request("GET", url[url.index("/fhir/R4"):]).json()
            links = {l["relation"]: l["url"] for l in b["link"]}
            return [e["resource"]["id"] for e in b["entry"]], links

        first, links = page(f"{FHIR}/Patient/{pid}/$everything?_type=Observation&_count=2")
        self.assertEqual(first, sorted(ids)[:2])
        self.assertNotIn("previous", links)
        self.assertEqual(self.srv.request("DELETE", f"{FHIR}/Observation/{first[0]}").status, 204)
        added = self.srv.request("POST", f"{FHIR}/AllergyIntolerance", {
            "resourceType": "AllergyIntolerance", "patient": {"reference": f"Patient/{pid}"}})
        self.assertEqual(added.status, 201, added.text)
        seen = list(first)
        while "next" in links:
            got, links = page(links["next"])
            seen += got
        self.assertEqual(seen, sorted(ids))
        # Back from the last page: the pages before it, in order, without the deleted one.
        back = []
        while "previous" in links:
            got, links = page(links["previous"])
            back = got + back
        self.assertEqual(back, sorted(ids)[1:4])
        self.assertEqual(self.srv.request(
            "GET", f"{FHIR}/Patient/{pid}/$everything?_page=bm90LWEtdG9rZW4").status, 400)

    def test_patient_everything(self):
        pid = self.patients[0]
        other = self.srv.request("POST", f"{FHIR}/Observation", dict(
            obs(self.patients[1], "8867-4", 1, "2024-05-01T00:00:00Z"),
            performer=[{"reference": f"Patient/{pid}"}]))
        self.assertEqual(other.status, 201)
        r = self.srv.request("GET", f"{FHIR}/Patient/{pid}/$everything")
        self.assertEqual(r.status, 200, r.text)
        b = r.json()
        got = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"]]
        self.assertIn(("Patient", pid), got)
        # Its own observations, and one where it is only the performer.
        self.assertIn(("Observation", other.json()["id"]), got)
        self.assertEqual(sum(1 for t, _ in got if t == "Observation"), 4)
        self.assertNotIn(self.patients[1], [i for t, i in got if t == "Patient"])
        self.assertEqual(b["total"], len(got))
        # _type, _count paging, _since.
        b = self.srv.request("GET", f"{FHIR}/Patient/{pid}/$everything?_type=Observation&_count=3").json()
        self.assertEqual(len(b["entry"]), 3)
        nxt = {l["relation"]: l["url"] for l in b["link"]}["next"]
        b2 = self.srv.request("GET", nxt[nxt.index("/fhir/R4"):]).json()
        self.assertEqual(len(b2["entry"]), 1)
        self.assertTrue(all(e["resource"]["resourceType"] == "Observation" for e in b2["entry"]))
        b = self.srv.request("GET", f"{FHIR}/Patient/{pid}/$everything?_since=2999-01-01T00:00:00Z").json()
        self.assertEqual(b["total"], 0)
        self.assertEqual(self.srv.request("GET", f"{FHIR}/Patient/nope/$everything").status, 404)
        self.assertEqual(self.srv.request("GET", f"{FHIR}/Observation/x/$everything").status, 501)
        self.assertEqual(self.srv.request(
            "GET", f"{FHIR}/Patient/{pid}/$everything?_since=yesterday").status, 400)
        r = self.srv.request("GET", f"/audit/v1/records?action=%24everything&patient={pid}")
        self.assertEqual(r.status, 200, r.text)
        self.assertTrue(r.json()["records"])
        self.srv.request("DELETE", f"{FHIR}/Observation/{other.json()['id']}")

    def test_everything_since_returns_exactly_what_changed(self):
        r = self.srv.request("POST", f"{FHIR}/Patient", {"resourceType": "Patient"})
        self.assertEqual(r.status, 201, r.text)
        pid = r.json()["id"]

        def create(code):
            c = self.srv.request("POST", f"{FHIR}/Observation",
                                 obs(pid, code, 1, "2024-05-01T00:00:00Z"))
            self.assertEqual(c.status, 201, c.text)
            return c.json()

        old = create("1111-1")
        time.sleep(0.01)
        cut = create("2222-2")
        since = cut["meta"]["lastUpdated"]
        time.sleep(0.01)
        later = create("3333-3")
        updated = self.srv.request("PUT", f"{FHIR}/Observation/{old['id']}",
                                   dict(obs(pid, "1111-1", 2, "2024-05-01T00:00:00Z"),
                                        id=old["id"]))
        self.assertEqual(updated.status, 200, updated.text)
        url = f"{FHIR}/Patient/{pid}/$everything?_since={urllib.parse.quote(since)}"
        b = self.srv.request("GET", url).json()
        got = sorted(e["resource"]["id"] for e in b["entry"])
        # The Patient and nothing else older than the cut; the cut itself counts (>=).
        self.assertEqual(got, sorted([old["id"], cut["id"], later["id"]]))
        self.assertEqual(b["total"], 3)
        self.assertEqual(next(e for e in b["entry"] if e["resource"]["id"] == old["id"])
                         ["resource"]["meta"]["versionId"], "2")
        # Paged, the same members in (type, id) order.
        page = self.srv.request("GET", url + "&_count=2").json()
        self.assertEqual(len(page["entry"]), 2)
        self.assertEqual(page["total"], 3)
        nxt = {l["relation"]: l["url"] for l in page["link"]}["next"]
        rest = self.srv.request("GET", nxt[nxt.index("/fhir/R4"):]).json()
        self.assertEqual(sorted(e["resource"]["id"] for e in page["entry"] + rest["entry"]), got)

    def test_no_name_or_identifier_in_the_database_file(self):
        self.srv.stop()
        try:
            db = self.srv.db_path
            for suffix in ("", "-wal"):
                path = db + suffix
                if not os.path.exists(path):
                    continue
                data = open(path, "rb").read().lower()
                self.assertNotIn(self.marker.encode(), data, path)
                self.assertNotIn(b"mrn" + self.marker.encode(), data, path)
        finally:
            self.srv.start()


if __name__ == "__main__":
    unittest.main()
