"""A fixed load for the callgrind scripts: CLIENTS keep-alive TLS connections, each sending
PER_CLIENT requests (seeded, so every run asks the same).

  read_load.py PORT IDS_FILE HEADER_FILE CLIENTS PER_CLIENT            reads stored Observations
  read_load.py PORT IDS_FILE HEADER_FILE CLIENTS PER_CLIENT TEMPLATE   creates Observations
  read_load.py PORT IDS_FILE HEADER_FILE CLIENTS PER_CLIENT search     searches Observations

For reads IDS_FILE lists Observations; for creates and searches it lists Patients. A create posts
TEMPLATE with __PID__ set to one of them and __N__ to a number unique to the run; a search asks
for a Patient's heart rates, as bench/search.lua does."""
import http.client
import random
import ssl
import sys
import threading
import time


def main():
    port, ids_file, header_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    clients, per_client = int(sys.argv[4]), int(sys.argv[5])
    mode = sys.argv[6] if len(sys.argv) > 6 else "read"
    template = None
    if mode != "read" and mode != "search":
        template, mode = open(mode).read().strip(), "create"
    ids = [line.strip().split("/")[-1] for line in open(ids_file) if line.strip()]
    authorization = open(header_file).read().split(":", 1)[1].strip()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # The throwaway server's self-signed certificate.
    run = str(time.time_ns())
    failures = []

    def client(seed):
        pick = random.Random(seed)
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=300)
        for n in range(per_client):
            if mode == "read":
                connection.request("GET", "/fhir/R4/Observation/" + pick.choice(ids),
                                   headers={"Authorization": authorization})
                expected = 200
            elif mode == "search":
                connection.request("GET", "/fhir/R4/Observation?subject=Patient/" +
                                   pick.choice(ids) + "&code=http%3A%2F%2Floinc.org%7C8867-4",
                                   headers={"Authorization": authorization})
                expected = 200
            else:
                body = (template.replace("__PID__", pick.choice(ids))
                        .replace("__N__", f"{run}-{seed}-{n}"))
                connection.request("POST", "/fhir/R4/Observation", body=body.encode(),
                                   headers={"Authorization": authorization,
                                            "Content-Type": "application/fhir+json"})
                expected = 201
            response = connection.getresponse()
            response.read()
            if response.status != expected:
                failures.append(response.status)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit(f"read_load.py: {len(failures)} requests failed (statuses {sorted(set(failures))})")


if __name__ == "__main__":
    main()
