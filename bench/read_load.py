"""A fixed read load for bench/callgrind_reads.sh: CLIENTS keep-alive TLS connections, each
reading PER_CLIENT stored Observations picked at random (seeded, so every run asks the same)."""
import http.client
import random
import ssl
import sys
import threading


def main():
    port, ids_file, header_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    clients, per_client = int(sys.argv[4]), int(sys.argv[5])
    ids = [line.strip().split("/")[-1] for line in open(ids_file) if line.strip()]
    authorization = open(header_file).read().split(":", 1)[1].strip()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # The throwaway server's self-signed certificate.
    failures = []

    def client(seed):
        pick = random.Random(seed)
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=300)
        for _ in range(per_client):
            connection.request("GET", "/fhir/R4/Observation/" + pick.choice(ids),
                               headers={"Authorization": authorization})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit(f"read_load.py: {len(failures)} reads failed (statuses {sorted(set(failures))})")


if __name__ == "__main__":
    main()
