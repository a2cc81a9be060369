/* seq: sequential-stream detection, shared by the daemon (what to prefetch) and the mount (when to
 * ask for read-ahead).
 *
 * An object keeps its few most recent streams of reads, in blocks. A read of [b0, b1) that
 * starts where a stream ended (or overlaps its last two blocks: read-ahead windows overlap)
 * extends it; anything else starts a new stream in the oldest slot. Several threads, mounts or
 * mmap read-aheads loading one file each form a stream; a random reader never does, however much
 * of the file it touches.
 */
#ifndef HOARDFS_SEQ_H
#define HOARDFS_SEQ_H

#include <stdbool.h>
#include <stdint.h>

#define SEQ_STREAMS 8 /* streams tracked per object */
#define SEQ_TRIGGER 4 /* blocks of one stream that make an object "being loaded" */

struct seq_streams {
	uint32_t end[SEQ_STREAMS]; /* the block after each stream's last */
	uint32_t len[SEQ_STREAMS]; /* blocks the stream covered; 0 = unused slot */
	uint32_t next;		   /* the slot a new stream takes */
};

/* Notes a read of blocks [b0, b1) (b0 < b1). Returns whether it belongs to a stream of at least
 * SEQ_TRIGGER blocks: one it extended, or a new one that starts at block 0 and is that long. */
bool seq_note(struct seq_streams *s, uint32_t b0, uint32_t b1);

#endif
