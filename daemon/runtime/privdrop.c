#include "privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int privdrop_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid)
{
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        errno = errno ? errno : ENOENT;
        return -1;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    if (group != NULL && group[0] != '\0') {
        struct group *gr = getgrnam(group);
        if (gr == NULL) {
            errno = errno ? errno : ENOENT;
            return -1;
        }
        *gid = gr->gr_gid;
    }
    return 0;
}

static int drop_identity(uid_t uid, gid_t gid)
{
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;

    if (setgroups(1, &gid) == -1)
        return -1;
    if (setresgid(gid, gid, gid) == -1)
        return -1;
    if (setresuid(uid, uid, uid) == -1)
        return -1;
    if (getresuid(&ruid, &euid, &suid) == -1 || getresgid(&rgid, &egid, &sgid) == -1)
        return -1;
    if (ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid) {
        errno = EPERM;
        return -1;
    }
    /* The proof that the drop is permanent: getting root back must fail. */
    if (uid != 0 && (setuid(0) != -1 || seteuid(0) != -1)) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

static int clear_capabilities(void)
{
    cap_t none = cap_init();
    if (none == NULL)
        return -1;
    int rc = cap_set_proc(none);
    int saved = errno;
    cap_free(none);
    errno = saved;
    if (rc == -1)
        return -1;
    /* Ambient capabilities would survive an exec; there must be none. */
    if (CAP_AMBIENT_SUPPORTED() && cap_reset_ambient() == -1)
        return -1;
    return 0;
}

int privdrop_become(uid_t uid, gid_t gid)
{
    if (geteuid() == 0 && drop_identity(uid, gid) == -1)
        return -1;
    if (clear_capabilities() == -1)
        return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
        return -1;
    return 0;
}

/* The child's exit status when the drop itself failed. */
#define RUN_AS_NO_DROP 126

int privdrop_run_as(uid_t uid, gid_t gid, int (*fn)(void *arg), void *arg)
{
    int status;
    pid_t pid = fork();
    if (pid == -1)
        return -1;
    if (pid == 0) {
        if (privdrop_become(uid, gid) == -1)
            _exit(RUN_AS_NO_DROP);
        /* _exit: the parent's stdio buffers and atexit handlers are not the child's. */
        _exit(fn(arg) == 0 ? 0 : 1);
    }
    while (waitpid(pid, &status, 0) == -1) {
        if (errno != EINTR)
            return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) <= 1)
        return WEXITSTATUS(status);
    errno = WIFEXITED(status) && WEXITSTATUS(status) == RUN_AS_NO_DROP ? EPERM : EIO;
    return -1;
}
