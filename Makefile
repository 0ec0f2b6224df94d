# The two commands: `make run` and `make test`. Everything else is CMake.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)

.PHONY: all run test build deps test-deps asan tsan fuzz bench format clean

all: build

deps:
	@scripts/deps.sh run

test-deps:
	@scripts/deps.sh test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/orderd

# The whole suite on the release build, then again under ASan+UBSan and
# under TSan (the fuzzers, the fault suite, the hostile-client test, the
# page-fault count and the deployment checks run once, in the first: they
# measure time or load, or count the allocator's work; so does the store
# contract's unnamed-statement run, whose C is the postgres run's).
test: test-deps build
	@rm -f $(BUILD)/fault-suite.txt
	@cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 900
	@echo "== the fault suite's verdict (tests/fault/README.md)"
	@cat $(BUILD)/fault-suite.txt 2>/dev/null || echo "fault suite: not run"
	@$(MAKE) --no-print-directory asan tsan

SAN_EXCLUDE = ^(fuzz|deploy|lint|node|browser|openapi)\.|^fault\.(suite|test_hostile\.sqlite)$$|^integration\.test_churn\.|\.postgres_txn$$
SAN_CTEST = ctest --output-on-failure -j 2 --timeout 900

asan: test-deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DORDERD_SANITIZE=address >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@echo "== the suite under ASan+UBSan"
	@cd build-asan && $(SAN_CTEST) -E '$(SAN_EXCLUDE)'

# TSan leaves out the PgBouncer run too: its threads are the pool's, which
# every postgres test already runs under TSan; ASan keeps it for the
# transaction-pooling statement path.
tsan: test-deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DORDERD_SANITIZE=thread >/dev/null
	@cmake --build build-tsan -j $(JOBS)
	@echo "== the suite under TSan"
	@cd build-tsan && $(SAN_CTEST) -E '$(SAN_EXCLUDE)|^integration\.test_pgbouncer\.'

# Both backends (bench/README.md); PostgreSQL with the peers (Graphile
# Worker, pg-boss: npm ci into $(BUILD)/bench-peers on first use).
bench: build
	@/usr/bin/python3 bench/bench.py $(BUILD) --json $(BUILD)/bench-results.json
	@/usr/bin/python3 bench/bench.py $(BUILD) --backend postgres --json $(BUILD)/bench-results-postgres.json

format:
	@clang-format -i src/*/*.c src/*/*.h tests/unit/*.c tests/fuzz/*.c bench/*.c

clean:
	rm -rf $(BUILD) build-asan build-tsan
