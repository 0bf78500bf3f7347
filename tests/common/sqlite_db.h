/* Database fixtures for the SQLite guest's tests, made on the host with
 * Debian's libsqlite3 (the test links -lsqlite3). */
#ifndef SL_TEST_SQLITE_DB_H
#define SL_TEST_SQLITE_DB_H

#include <sqlite3.h>
#include <stdio.h>

/* Runs `sql` on the database file at `path` (created when missing); prints
 * SQLite's message when it fails. Returns 0 or -1. */
static inline int db_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    char *msg = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        printf("  make_db: %s\n", msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

#endif
