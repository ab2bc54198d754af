/* The built-in job kinds: echo, sleep and fail. */
#ifndef JOBQ_BUILTIN_H
#define JOBQ_BUILTIN_H

/* Registers echo, sleep and fail. Returns -1 if a name is taken. */
int builtin_register(void);

#endif
