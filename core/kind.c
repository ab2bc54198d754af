/* The job kind table. */
#include "core/kind.h"

#include <string.h>

static const struct job_kind *kinds[KIND_MAX];
static int nkinds;

int kind_register(const struct job_kind *kind)
{
	if (nkinds == KIND_MAX || kind_find(kind->name))
		return -1;
	kinds[nkinds++] = kind;
	return 0;
}

const struct job_kind *kind_find(const char *name)
{
	for (int i = 0; i < nkinds; i++)
		if (strcmp(kinds[i]->name, name) == 0)
			return kinds[i];
	return NULL;
}

void kind_reset(void)
{
	nkinds = 0;
}
