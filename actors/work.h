/* work.h - work-item internals shared by work.c and the reaper (reaper.c). */
#ifndef BC_WORK_H
#define BC_WORK_H

#include "hub.h"

/* A parsed work item: item's strings point into json (or data). */
typedef struct {
    bc_work_item_t item;
    void *json; /* json_t * */
    char *data; /* compact text of the "data" member, or NULL */
} bc__work_parsed_t;

/* "coordinator:work:<swarm>:<owner>:<workId>" into buf; its length or -ENAMETOOLONG. */
int bc__work_key(char *buf, size_t len, const char *swarm, const char *owner, const char *wid);
/* Parse an item's value (len bytes). 0 or -EBADMSG; release with bc__work_item_free. */
int bc__work_item_parse(const char *text, size_t len, bc__work_parsed_t *out);
void bc__work_item_free(bc__work_parsed_t *p);
/* The value of p moved to new_owner: assignedTo, status "transferred", epoch + 1,
 * transferredFrom, transferredAt, other members kept in order. malloc'd, or NULL. */
char *bc__work_moved_value(const bc__work_parsed_t *p, const char *new_owner, const char *dead,
                           const char *work_id, uint64_t now_ms);
/* Submit the compare-and-move script; its answer goes to op. */
int bc__work_move(bc_hub_t *h, bc__op_t *op, const char *old_key, const char *new_key,
                  const char *old_val, size_t old_len, const char *new_val);
/* The move script's answer: 0 moved (or already moved), -ENOENT gone, -EAGAIN changed since
 * read, -EEXIST destination taken, -EIO; *why describes it. */
int bc__work_move_status(const bc_redis_reply_msg_t *m, const char **why);

#endif
