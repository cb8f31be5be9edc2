#ifndef SWITCHBOARD_CMONGOC_SHIM_H
#define SWITCHBOARD_CMONGOC_SHIM_H
#include <mongoc/mongoc.h>
#endif
