#!/bin/sh
# The SQLite guest through the CLI (docs/sqlite-guest.md, docs/cli.md): a
# database file becomes init data (`snapshot save GUEST FILE --init-data DB`,
# `call --init-data DB GUEST ...`), `call SNAP Query SQL` answers JSON, and
# the --init-data options and their errors.
#
#   tests/e2e/sqlite.sh BUILD_DIR       the checks, one "PASS name" / "FAIL
#                                       name: why" line each, for build/guests/
#                                       sqlite (x86-64) and sqlite32 (i686)
#                                       where their architecture runs and
#                                       SANDLET_TEST_ARCHS covers it
#                                       (tests/e2e/arch.sh; tests/run runs this
#                                       natively and in the KVM lab)
#   tests/e2e/sqlite.sh --fixtures DIR  makes the database the checks use,
#                                       DIR/people.db, with Debian's sqlite3
#                                       shell (mk/sqlite.mk does, into
#                                       BUILD_DIR/fixtures/sqlite: the KVM lab
#                                       has no sqlite3)
#
# The guest's JSON is deterministic, so every result is compared as exact
# text; where jq is installed (not in the KVM lab) each is also parsed and
# queried with jq. POSIX sh (busybox ash in the lab).
if [ "${1:-}" = --fixtures ]; then
    d=${2:?usage: $0 --fixtures DIR}
    mkdir -p "$d" && rm -f "$d/people.db" "$d/people.db.tmp" || exit 1
    sqlite3 "$d/people.db.tmp" <<'EOF' || exit 1
PRAGMA page_size=4096;
CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER, score REAL, photo BLOB);
INSERT INTO people VALUES
    (1, 'Ann', 31, 9.5, x'89504e47'),
    (2, 'Bob', 42, 7.25, NULL),
    (3, 'Cy "the kid"', 7, NULL, NULL),
    (4, 'Dé' || char(10) || 'Two lines\', 55, 0.1, x'');
EOF
    mv "$d/people.db.tmp" "$d/people.db"
    exit 0
fi

B=${1:-build}
S=$B/sandlet
G=${SANDLET_GUESTS:-build/guests}
F=$B/fixtures/sqlite
export SANDLET_NO_LAB=1
unset SANDLET_FORCE_LAB
if [ ! -x "$S" ] || [ ! -f "$F/people.db" ]; then
    echo "FAIL sqlite: no $S or $F/people.db (make builds both)"
    exit 1
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/sandlet-sqlite.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
FAILS=0
. "$(dirname "$0")/arch.sh"
arch_init "$S" || FAILS=$((FAILS + 1))
JQ=
command -v jq >/dev/null 2>&1 && JQ=jq

CHECK_PREFIX="sqlite: "
. "$(dirname "$0")/check.sh"

# q NAME WANT FILTER ARGS...: `sandlet ARGS` exits 0 and prints exactly WANT
# (one line), and with jq the filter FILTER is true of it.
q() {
    name=$1 want=$2 filter=$3
    shift 3
    out=$("$S" "$@" 2>"$T/err")
    rc=$?
    if [ "$rc" != 0 ] || [ "$out" != "$want" ]; then
        fail "$name: rc=$rc, stdout '$out' (want '$want'), stderr: $(head -c 400 "$T/err")"
    elif [ -n "$JQ" ] && ! printf '%s\n' "$out" | jq -e "$filter" >/dev/null 2>"$T/jq"; then
        fail "$name: jq '$filter' is not true of $out $(head -c 200 "$T/jq")"
    else
        pass "$name"
    fi
}

# te NAME WANT_RC PATTERN ARGS...: exit code WANT_RC, empty stdout, stderr
# matching PATTERN (grep -E).
te() {
    name=$1 want_rc=$2 pat=$3
    shift 3
    out=$("$S" "$@" 2>"$T/err")
    rc=$?
    if [ "$rc" = "$want_rc" ] && [ -z "$out" ] && grep -Eq -- "$pat" "$T/err"; then
        pass "$name"
    else
        fail "$name: rc=$rc (want $want_rc), stdout '$out', stderr (want /$pat/): $(head -c 400 "$T/err")"
    fi
}

DB=$F/people.db
ALL='[{"id":1,"name":"Ann","age":31,"score":9.5,"photo":"x'"'"'89504e47'"'"'"},{"id":2,"name":"Bob","age":42,"score":7.25,"photo":null},{"id":3,"name":"Cy \"the kid\"","age":7,"score":null,"photo":null},{"id":4,"name":"Dé\nTwo lines\\","age":55,"score":0.1,"photo":"x'"''"'"}]'
ALL_JQ='length == 4 and .[0].photo == "x'"'"'89504e47'"'"'" and .[1].photo == null and .[2].name == "Cy \"the kid\"" and .[3].name == "Dé\nTwo lines\\" and .[3].score == 0.1 and ([.[].age] | add) == 135'

# ------------------------------------------------------------ options alone (no guest runs)
te "--init-data-perm w is refused" 2 "'w' is not r, rw, rx or rwx" call --init-data-perm w "$G/sqlite" Query 'select 1'
te "--init-data-perm needs init data" 2 "--init-data-perm needs init data" call --init-data-perm rw "$G/sqlite" Query 'select 1'
te "--init-data-size must be a size" 2 "--init-data-size: 'lots' is not a size" call --init-data-size lots "$G/sqlite" Query 'select 1'
te "--init-data needs a value" 2 "--init-data needs a value" call "$G/sqlite" Query 'select 1' --init-data

for g in sqlite sqlite32; do
    a=amd64
    [ $g = sqlite32 ] && a=i686
    arch_need $a || continue
    D=$G/$g

    # The commands of docs/sqlite-guest.md: a snapshot file holding the database.
    out=$("$S" snapshot save "$D" "$T/db.snap" --init-data "$DB" 2>"$T/err")
    rc=$?
    if [ $rc = 0 ] && [ -z "$out" ] && [ -f "$T/db.snap" ] && grep -q "saved $T/db.snap" "$T/err"; then
        pass "$g snapshot save --init-data"
    else
        fail "$g snapshot save --init-data: rc=$rc stdout '$out' stderr $(head -c 400 "$T/err")"
    fi
    q "$g call SNAP Query: every type, escaped" "$ALL" "$ALL_JQ" call "$T/db.snap" Query 'SELECT * FROM people ORDER BY id'
    q "$g aggregate" '[{"n":4,"oldest":"Dé\nTwo lines\\"}]' '.[0].n == 4' \
        call "$T/db.snap" Query 'SELECT count(*) AS n, (SELECT name FROM people ORDER BY age DESC LIMIT 1) AS oldest FROM people'
    te "$g read-only by default: writes fail with SQLite's message" 1 "Query: .*attempt to write a readonly database" \
        call "$T/db.snap" Query "UPDATE people SET age = 0"
    te "$g SQL error" 1 "Query: .*no such table: nope" call "$T/db.snap" Query 'SELECT * FROM nope'
    te "$g --init-data on a snapshot file" 2 "init-data options do not apply to a snapshot file" \
        call --init-data "$DB" "$T/db.snap" Query 'select 1'
    te "$g --init-data-size on a snapshot file" 2 "init-data options do not apply to a snapshot file" \
        call --init-data-size 1M "$T/db.snap" Query 'select 1'

    # Writable: each sandbox from the file writes its own copy; the file keeps the original.
    "$S" snapshot save "$D" "$T/rw.snap" --init-data "$DB" --init-data-perm rw 2>"$T/err" ||
        fail "$g snapshot save --init-data-perm rw: $(head -c 400 "$T/err")"
    q "$g rw: a write" '{"changes":2,"last_insert_rowid":0}' '.changes == 2' \
        call "$T/rw.snap" Query 'UPDATE people SET age = age + 1 WHERE age > 40'
    q "$g rw: statements in turn, rows of the last SELECT" '[{"id":5,"name":"Eve"}]' '.[0].id == 5' \
        call "$T/rw.snap" Query "INSERT INTO people(name) VALUES ('Eve'); SELECT id, name FROM people WHERE id > 4; DELETE FROM people"
    q "$g rw: the next sandbox sees the original" '[{"n":4,"ages":135}]' '.[0].ages == 135' \
        call "$T/rw.snap" Query 'SELECT count(*) AS n, sum(age) AS ages FROM people'

    # An ELF with --init-data, and the shell: restore takes a write back.
    q "$g call ELF --init-data" '[{"n":4}]' '.[0].n == 4' \
        call --init-data "$DB" "$D" Query 'SELECT count(*) AS n FROM people'
    printf '%s\n' 'snapshot a' 'call Query "DELETE FROM people WHERE age < 40"' \
        'call Query "SELECT group_concat(name) AS left FROM people"' 'restore a' \
        'call Query "SELECT count(*) AS n FROM people"' >"$T/cmds"
    "$S" shell --init-data "$DB" --init-data-perm=rw "$D" <"$T/cmds" >"$T/out" 2>"$T/err"
    rc=$?
    want=$(printf '%s\n' '{"changes":2,"last_insert_rowid":0}' '[{"left":"Bob,Dé\nTwo lines\\"}]' \
        'restored a generation=1' '[{"n":4}]')
    got=$(sed 1d "$T/out")
    if [ $rc = 0 ] && grep -q '^snapshot a generation=1 id=' "$T/out" && [ "$got" = "$want" ]; then
        pass "$g shell --init-data: a write, then restore"
    else
        fail "$g shell: rc=$rc stdout $(cat "$T/out") stderr $(head -c 400 "$T/err")"
    fi

    # Room to grow (--init-data-size), and a database made from nothing.
    te "$g no room: the database is full" 1 "database or disk is full" \
        call --init-data "$DB" --init-data-perm rw "$D" Query "INSERT INTO people(name, photo) VALUES ('big', zeroblob(100000))"
    q "$g --init-data-size: room to grow" '[{"n":5,"big":100000}]' '.[0].big == 100000' \
        call --init-data "$DB" --init-data-perm rw --init-data-size 1M "$D" Query \
        "INSERT INTO people(name, photo) VALUES ('big', zeroblob(100000)); SELECT count(*) AS n, max(length(photo)) AS big FROM people"
    q "$g --init-data-size alone: a new database" '[{"a":"new"}]' '.[0].a == "new"' \
        call --init-data-size 64K --init-data-perm rw "$D" Query "CREATE TABLE t(a); INSERT INTO t VALUES ('new'); SELECT a FROM t"
    q "$g no init data: an empty in-memory database" '[{"tables":0}]' '.[0].tables == 0' \
        call "$D" Query 'SELECT count(*) AS tables FROM sqlite_schema'

    # The output buffer: a clear error, and --output makes room.
    big="SELECT replace(hex(zeroblob(100000)), '00', 'a') AS s"
    te "$g result over the output buffer" 1 "result too large.*--output" call "$D" Query "$big"
    out=$("$S" call --output 256K "$D" Query "$big" 2>"$T/err")
    rc=$?
    if [ $rc = 0 ] && [ ${#out} = 100010 ] && { [ -z "$JQ" ] || printf '%s' "$out" | jq -e '.[0].s | length == 100000' >/dev/null; }; then
        pass "$g --output 256K holds a 100 KB result"
    else
        fail "$g --output 256K: rc=$rc length ${#out} stderr $(head -c 400 "$T/err")"
    fi

    # Bad init data: clear errors (exit 3), never a crash.
    te "$g --init-data-size below the file's size" 2 "--init-data-size 1024 is smaller than .*people.db \(8192 bytes\)" \
        call --init-data "$DB" --init-data-size 1K "$D" Query 'select 1'
    te "$g missing init data file" 3 "init data file $T/nope: cannot open" call --init-data "$T/nope" "$D" Query 'select 1'
    te "$g a directory as init data" 3 "not a regular file" call --init-data "$T" "$D" Query 'select 1'
    printf 'this is not a database, just text that goes on and on %0200d\n' 0 >"$T/garbage"
    te "$g garbage init data" 3 "not an SQLite database" snapshot save "$D" "$T/x.snap" --init-data "$T/garbage"
    head -c 4096 "$DB" >"$T/trunc.db"
    te "$g truncated database" 3 "2 pages of 4096 bytes .* holds only 4096 bytes: a truncated file" \
        call --init-data "$T/trunc.db" "$D" Query 'select 1'
    if [ ! -e "$T/x.snap" ]; then pass "$g nothing saved after a failed init"; else fail "$g $T/x.snap exists"; fi
    # A database in WAL mode (file format bytes 18 and 19 set to 2, as
    # PRAGMA journal_mode=WAL leaves them): says so, and how to convert it.
    cp "$DB" "$T/wal.db" && printf '\002\002' | dd of="$T/wal.db" bs=1 seek=18 conv=notrunc 2>/dev/null
    te "$g WAL-mode database" 3 "in WAL mode.*PRAGMA journal_mode=DELETE" \
        call --init-data "$T/wal.db" --init-data-perm rw "$D" Query 'select 1'
    rm -f "$T/db.snap" "$T/rw.snap"
done

[ "$FAILS" = 0 ]
