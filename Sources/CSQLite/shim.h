#include <sqlite3.h>

/// Turns off SQLite's memory statistics (a global mutex taken on every allocation). sqlite3_config is
/// variadic, which Swift cannot call; this must run before the first connection opens (SQLITE_MISUSE after).
static inline int switchboard_sqlite3_disable_memstatus(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

#if defined(__linux__)
#include <sys/prctl.h>
/// Names the calling thread (what `top -H` and profilers show; the kernel keeps 15 bytes).
static inline void switchboard_name_current_thread(const char *name) {
    prctl(PR_SET_NAME, name, 0, 0, 0);
}
#else
static inline void switchboard_name_current_thread(const char *name) { (void)name; }
#endif
