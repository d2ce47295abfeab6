#!/usr/bin/env bash
# Seeds the working corpora (fuzz/corpus/<target>, git-ignored) from the committed test vectors
# and the small curated seeds in fuzz/corpus-seed/. Safe to run again: files are content-named.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/decode corpus/topic corpus/host_session corpus/config corpus/normalizer
for f in ../testdata/sparkplug-vectors/*.bin corpus-seed/decode/*; do
    [ -f "$f" ] || continue
    cp "$f" "corpus/decode/$(sha1sum "$f" | cut -c1-40)"
done
# One seed per topic named in the vectors' JSON documents, plus the curated topic seeds.
for t in $(grep -ho '"topic": *"[^"]*"' ../testdata/sparkplug-vectors/*.json | sed 's/.*: *"//; s/"$//' | sort -u); do
    printf '%s' "$t" > "corpus/topic/$(printf '%s' "$t" | sha1sum | cut -c1-40)"
done
for f in corpus-seed/topic/*; do
    [ -f "$f" ] || continue
    cp "$f" "corpus/topic/$(sha1sum "$f" | cut -c1-40)"
done
# Host sessions: curated record sequences (see the layout in fuzz_targets/host_session.rs).
for f in corpus-seed/host_session/*; do
    [ -f "$f" ] || continue
    cp "$f" "corpus/host_session/$(sha1sum "$f" | cut -c1-40)"
done
# Configuration files: the example, the demo's, the test suite's (valid and broken ones), and
# the curated seeds (with `#!OEE_…=value` environment lines, see fuzz_targets/config.rs).
for f in ../config.example.yml ../crates/oee-stream/src/demo/demo.yml \
         ../crates/oee-stream/tests/config/*.yml corpus-seed/config/*; do
    [ -f "$f" ] || continue
    cp "$f" "corpus/config/$(sha1sum "$f" | cut -c1-40)"
done
# The normalizer's input is a byte stream read by `arbitrary`: any bytes are a start.
for f in corpus-seed/normalizer/*; do
    [ -f "$f" ] || continue
    cp "$f" "corpus/normalizer/$(sha1sum "$f" | cut -c1-40)"
done
echo "host_session: $(ls corpus/host_session | wc -l) inputs"
echo "config: $(ls corpus/config | wc -l) inputs, normalizer: $(ls corpus/normalizer | wc -l) inputs"
echo "decode: $(ls corpus/decode | wc -l) inputs, topic: $(ls corpus/topic | wc -l) inputs"
