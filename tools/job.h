/* job: the hoardfs-inspect commands that start or follow daemon jobs (warm, verify, job,
 * cancel), with progress display and Ctrl-C cancelling the job followed. */
#ifndef HOARDFS_TOOLS_JOB_H
#define HOARDFS_TOOLS_JOB_H

struct insp;

/*
 * Each returns the process exit status (INSP_EXIT_*). While a job is followed (warm --wait,
 * verify, job --wait), SIGINT, SIGTERM and SIGHUP send {"cmd":"cancel"} for it and the status is
 * INSP_EXIT_SIGNAL + the signal; a second signal acts as if no handler were installed.
 */
int job_warm(struct insp *x);	/* INSP_EXIT_FAIL when an object failed (with --wait) */
int job_verify(struct insp *x); /* INSP_EXIT_FAIL on any corruption, or a failed check */
int job_show(struct insp *x);	/* `job ID [--wait]` */
int job_cancel(struct insp *x);

#endif
