/* seq: sequential-stream detection (see seq.h). */
#include "common/seq.h"

bool seq_note(struct seq_streams *s, uint32_t b0, uint32_t b1)
{
	for (int i = 0; i < SEQ_STREAMS; i++) {
		uint32_t end = s->end[i];

		if (!s->len[i] || b0 + 2 < end || b0 > end)
			continue;
		if (b1 > end) {
			s->len[i] += b1 - (b0 > end ? b0 : end);
			s->end[i] = b1;
		}
		return s->len[i] >= SEQ_TRIGGER;
	}
	s->end[s->next] = b1;
	s->len[s->next] = b1 - b0;
	s->next = (s->next + 1) % SEQ_STREAMS;
	return b1 - b0 >= SEQ_TRIGGER && b0 == 0;
}
