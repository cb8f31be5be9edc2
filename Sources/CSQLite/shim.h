#include <sqlite3.h>

/// Turns off SQLite's memory statistics (a global mutex taken on every allocation). sqlite3_config is
/// variadic, which Swift cannot call; this must run before the first connection opens (SQLITE_MISUSE after).
static inline int switchboard_sqlite3_disable_memstatus(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
