/* The CPU backend behind the backend interface (core/backend.h): the host backend, which runs every
 * op and holds whatever no device takes. */
#ifndef VKL_CPU_BACKEND_H
#define VKL_CPU_BACKEND_H

#include "backend.h"

/* Opens the CPU backend (index 0: the host); also reachable as vkl_cpu_backend_reg.open. */
vkl_backend *vkl_cpu_backend_open(int index, const vkl_backend_config *cfg, vkl_error *err);

/* Its registration (cpu_info.c), listed in backends/registry.c. */
extern const vkl_backend_reg vkl_cpu_backend_reg;

#endif
