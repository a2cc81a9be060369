/* show: the one-request commands of hoardfs-inspect (status, ls, stat, evict, stats): each sends
 * one control request and prints the reply for people, or as JSON with --json. */
#ifndef HOARDFS_TOOLS_SHOW_H
#define HOARDFS_TOOLS_SHOW_H

struct insp;

/* Each returns the process exit status (INSP_EXIT_*); errors are printed on stderr. */
int show_status(struct insp *x); /* INSP_EXIT_DOWN, the answer on stdout, when no daemon runs */
int show_ls(struct insp *x);	 /* falls back to offline_ls() as root when no daemon runs */
int show_stat(struct insp *x);	 /* INSP_EXIT_FAIL when the object is not cached */
int show_evict(struct insp *x);
int show_stats(struct insp *x);

#endif
