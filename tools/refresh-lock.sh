#!/usr/bin/env bash
# Refresh constraints.txt, the lock that the README and .ci/run install through.
#
# Installs the newest versions that pyproject.toml allows into a throwaway virtualenv, prints
# what changed against the current lock, runs the test suite against them, and writes the new
# lock only when the suite passes. When it fails, the old lock stays and the failing tests are
# listed: those are what the new releases broke.
#
#   tools/refresh-lock.sh            # resolve, test, write constraints.txt if green
#   tools/refresh-lock.sh --no-test  # resolve and write without running the suite
set -euo pipefail
cd "$(dirname "$0")/.."
run_tests=yes
[ "${1:-}" = "--no-test" ] && run_tests=no

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
echo "resolving the newest versions pyproject.toml allows..."
"$py" -m pip install --quiet -e '.[test]'
"$py" -m pip check
{
    echo "# The lock: exact versions the test suite passed with (Python 3.11, Linux)."
    echo "# Used as: pip install -c constraints.txt -e '.[test]'. Refresh: tools/refresh-lock.sh"
    "$py" -m pip freeze --exclude-editable | grep -v '^pip==' | LC_ALL=C sort -f
} > "$work/constraints.txt"

echo "changes against the current lock:"
diff <(grep -v '^#' constraints.txt 2>/dev/null || true) <(grep -v '^#' "$work/constraints.txt") \
    | sed -n 's/^< /  - /p; s/^> /  + /p' || true

if [ "$run_tests" = yes ]; then
    echo "running the test suite against them..."
    if ! "$py" -m pytest -q -p no:cacheprovider 2>&1 | tee "$work/pytest.log" | tail -n 30; then
        echo "the suite FAILED with the newest versions; constraints.txt is unchanged. Failing tests:"
        grep -E '^(FAILED|ERROR) ' "$work/pytest.log" || true
        exit 1
    fi
fi
cp "$work/constraints.txt" constraints.txt
echo "constraints.txt written ($(grep -vc '^#' constraints.txt) pins)."
