/* Splitting one conversion's rows across threads.
 *
 * A conversion of a 1080p frame takes about 0.4 ms on one core; starting and
 * joining a thread per call costs about 25 us, a sixth of what a second core
 * saves.  So helper threads are kept: they sleep on a condition variable and
 * each call wakes them (a futex wake, a few microseconds).  The caller works
 * too, and every thread claims slices of rows from one atomic counter, so a
 * helper that wakes late simply finds less to do.
 *
 * One conversion uses the pool at a time.  A second thread that converts
 * while the pool is busy falls back to threads of its own rather than wait:
 * two converters (say, two capture sessions) must not serialise each other.
 * After fork() the child has no helpers; pthread_atfork() forgets them and
 * the child starts its own on first use.
 */
#include "nv12.h"

#include <pthread.h>

/* Slices per thread: small enough that a late helper can still take a share,
 * large enough that claiming (one atomic add) stays negligible. */
#define SLICES_PER_THREAD 4

typedef struct claim_state {
    const nv12_job *job;
    nv12_rows_fn rows;
    int chroma_rows;
    int slices;
    int next; /* atomic: the next slice to claim */
} claim_state;

static void run_claims(claim_state *c)
{
    for (;;) {
        int slice = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
        if (slice >= c->slices)
            return;
        int begin = (int)((long)c->chroma_rows * slice / c->slices);
        int end = (int)((long)c->chroma_rows * (slice + 1) / c->slices);
        c->rows(c->job, begin, end);
    }
}

/* ------------------------------------------------------ one-off threads */

static void *claim_thread(void *arg)
{
    run_claims(arg);
    return NULL;
}

/* If a thread cannot be started the caller's claims cover its share. */
static void run_with_new_threads(claim_state *c, int helpers)
{
    pthread_t threads[NV12_MAX_THREADS];
    int started = 0;

    while (started < helpers && pthread_create(&threads[started], NULL, claim_thread, c) == 0)
        started++;
    run_claims(c);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
}

/* ------------------------------------------------------------- the pool */

static struct {
    pthread_mutex_t busy; /* held by the one conversion using the pool */
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t wake, done;
    unsigned long generation; /* bumped once per conversion */
    int helpers;              /* threads started */
    int wanted;               /* helpers with an index below this take part */
    int checked_in;           /* helpers not yet finished with this generation */
    claim_state *work;
    int atfork_registered;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, NULL, 0};

/* What a helper is told at its start: its index, and the generation current
 * when it was created (a helper that is slow to start must still notice the
 * bump that follows, so it cannot read the generation itself). */
typedef struct helper_start {
    int index;
    unsigned long generation;
} helper_start;

static helper_start starts[NV12_MAX_THREADS];

static void *helper_main(void *arg)
{
    const helper_start *start = arg;
    unsigned long seen = start->generation;

    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.generation == seen)
            pthread_cond_wait(&pool.wake, &pool.lock);
        seen = pool.generation;
        claim_state *work = start->index < pool.wanted ? pool.work : NULL;
        pthread_mutex_unlock(&pool.lock);

        if (work)
            run_claims(work);

        pthread_mutex_lock(&pool.lock);
        if (--pool.checked_in == 0)
            pthread_cond_signal(&pool.done);
    }
    return NULL;
}

static void forget_pool_in_child(void)
{
    pthread_mutex_init(&pool.busy, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.helpers = 0;
    pool.checked_in = 0;
    pool.work = NULL;
}

/* Called with pool.busy held, so no helper is between generations. */
static void grow_pool(int helpers)
{
    if (!pool.atfork_registered)
        pool.atfork_registered = pthread_atfork(NULL, NULL, forget_pool_in_child) == 0;
    if (!pool.atfork_registered)
        return;
    while (pool.helpers < helpers) {
        pthread_t thread;
        pthread_attr_t attr;
        int ok;

        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_mutex_lock(&pool.lock);
        starts[pool.helpers].index = pool.helpers;
        starts[pool.helpers].generation = pool.generation;
        ok = pthread_create(&thread, &attr, helper_main, &starts[pool.helpers]) == 0;
        if (ok)
            pool.helpers++;
        pthread_mutex_unlock(&pool.lock);
        pthread_attr_destroy(&attr);
        if (!ok)
            return;
    }
}

static void run_with_pool(claim_state *c, int helpers)
{
    grow_pool(helpers);
    pthread_mutex_lock(&pool.lock);
    pool.work = c;
    pool.wanted = helpers;
    pool.checked_in = pool.helpers;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    run_claims(c);

    /* Every helper must be done with `c` (it lives on our stack) before we
     * return, including the ones that found nothing left to claim. */
    pthread_mutex_lock(&pool.lock);
    while (pool.checked_in > 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pool.work = NULL;
    pthread_mutex_unlock(&pool.lock);
}

void nv12_run(const nv12_job *job, nv12_rows_fn rows, int threads)
{
    claim_state c = {job, rows, (job->height + 1) / 2, 0, 0};

    if (threads > c.chroma_rows)
        threads = c.chroma_rows;
    if (threads <= 1) {
        rows(job, 0, c.chroma_rows);
        return;
    }
    c.slices = threads * SLICES_PER_THREAD;
    if (c.slices > c.chroma_rows)
        c.slices = c.chroma_rows;
    if (pthread_mutex_trylock(&pool.busy) == 0) {
        run_with_pool(&c, threads - 1);
        pthread_mutex_unlock(&pool.busy);
    } else {
        run_with_new_threads(&c, threads - 1);
    }
}
