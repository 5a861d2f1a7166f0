#include "loop.h"

#include <sys/epoll.h>

int loop_watch(struct loop *lp, int fd, uint32_t events, struct loop_handler *h)
{
    struct epoll_event ev = { .events = events, .data.ptr = h };
    return epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int loop_modify(struct loop *lp, int fd, uint32_t events, struct loop_handler *h)
{
    struct epoll_event ev = { .events = events, .data.ptr = h };
    return epoll_ctl(lp->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void loop_unwatch(struct loop *lp, int fd)
{
    epoll_ctl(lp->epfd, EPOLL_CTL_DEL, fd, NULL);
}

