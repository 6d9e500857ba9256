# Kura: the two commands (`make run`, `make test`) plus building blocks. Run as root on Debian 12
# (dependencies are installed with apt when missing).
SHELL := /bin/bash
BUILD_DIR ?= build
KURA_DATA_DIR ?= $(CURDIR)/kura-data
KURA_LISTEN ?= 127.0.0.1:8443
JOBS ?= $(shell nproc)

BUILD_DEPS := build-essential cmake ninja-build pkg-config libboost1.81-dev libssl-dev \
  libsodium-dev libsqlite3-dev nlohmann-json3-dev rapidjson-dev libjemalloc-dev libcli11-dev libtomlplusplus-dev \
  libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev libutf8proc-dev openssl
TEST_DEPS := python3 curl jq testssl.sh wrk procps rsyslog rsyslog-openssl

# $(call install_missing,PACKAGES): apt-get installs those of PACKAGES that are not installed yet.
define install_missing
@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
if [ -n "$$missing" ]; then \
  echo "Installing: $$missing"; \
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
fi
endef

.PHONY: deps test-deps build run test bench fuzz clean format

deps:
	$(call install_missing,$(BUILD_DEPS))

test-deps: deps
	$(call install_missing,$(TEST_DEPS))
	@# Node.js may come from the image rather than Debian; install Debian's only when absent.
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD_DIR)/build.ninja
	ninja -C $(BUILD_DIR) -j $(JOBS)

run: build
	@if [ ! -f "$(KURA_DATA_DIR)/kura.toml" ]; then \
	  ./$(BUILD_DIR)/kura init --data-dir "$(KURA_DATA_DIR)" || exit 1; \
	  echo; \
	else \
	  echo "Using existing data directory $(KURA_DATA_DIR)."; \
	  echo "A fresh admin token for this run (the one from init keeps working):"; \
	  ./$(BUILD_DIR)/kura token create --data-dir "$(KURA_DATA_DIR)" --name "make-run" || exit 1; \
	  echo; \
	fi
	@echo "Serving https://localhost:$(lastword $(subst :, ,$(KURA_LISTEN))) (Ctrl-C to stop)."
	@echo "Try: curl --cacert $(KURA_DATA_DIR)/tls/cert.pem https://localhost:$(lastword $(subst :, ,$(KURA_LISTEN)))/fhir/R4/metadata"
	./$(BUILD_DIR)/kura serve --data-dir "$(KURA_DATA_DIR)" --listen "$(KURA_LISTEN)"

test: test-deps build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 900

bench: test-deps build
	bench/run.sh

# Coverage-guided fuzzing of the parsers (fuzz/README.md): Clang and libFuzzer from Debian.
FUZZ_DEPS := clang libclang-rt-14-dev
fuzz: deps
	$(call install_missing,$(FUZZ_DEPS))
	CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKURA_FUZZ=ON -DKURA_BUILD_BENCH=OFF
	ninja -C build-fuzz -j $(JOBS) kura_fuzz_targets
	cd build-fuzz && ctest --output-on-failure -j $(JOBS) -L fuzz

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD_DIR)
