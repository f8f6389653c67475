#ifndef LF_IO_SAMPLER_SCHEMA_H
#define LF_IO_SAMPLER_SCHEMA_H

#include "io/config.h"
#include "lflex/sampler.h"

/* Every key of a sampler configuration (lf_sampler_config). */
extern const lf_cfg_schema lf_sampler_schema;

#endif
