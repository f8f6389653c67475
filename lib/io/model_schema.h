#ifndef LF_IO_MODEL_SCHEMA_H
#define LF_IO_MODEL_SCHEMA_H

#include "io/config.h"
#include "lflex/model_config.h"

/* Every key of a model configuration (lf_model_config). */
extern const lf_cfg_schema lf_model_schema;

/* Set the keys that checkpoints written before those keys existed lack to
 * the value their absence meant (the behaviour of the library then), so a
 * stored configuration keeps its meaning when a default changes. Call it
 * after lf_config_defaults and before parsing a stored configuration. */
int lf_model_config_absent_values(lf_model_config *cfg);

#endif
