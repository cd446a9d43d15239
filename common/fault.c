/* Fault points (common/fault.h). */
#include <stdlib.h>

#include "common/fault.h"

#ifdef QV_FAULT_POINTS
#include <fiu-control.h>
#endif

bool qv_fault_start(void)
{
    const char *base = getenv("QV_FAULT_FIFO");
    if (!base || !*base)
        return true;
#ifdef QV_FAULT_POINTS
    return fiu_init(0) == 0 && fiu_rc_fifo(base) == 0;
#else
    return false;
#endif
}
