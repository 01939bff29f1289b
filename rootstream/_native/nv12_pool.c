/* Splitting one conversion's rows across threads.
 *
 * A conversion of a 1080p frame takes about 0.4 ms on one core; starting and
 * joining a thread per call costs about 25 us, a sixth of what a second core
 * saves.  So helper threads are kept: they sleep on a condition variable and
 * each call wakes them.  The caller works too, and every thread claims slices
 * of rows until none is left, so a helper that wakes late simply finds less
 * (or nothing) to do, and the caller never waits for a helper that has not
 * started a slice.
 *
 * A claim is a compare-and-swap on one 64-bit ticket holding the conversion's
 * generation, its slice count and the next slice.  A helper still holding an
 * old ticket cannot claim anything of a newer conversion, and while a claimed
 * slice is unfinished its conversion cannot end, so the job it reads after a
 * successful claim is the one it claimed from.
 *
 * Waking a sleeping thread is the dear part: 40-460 us on a virtual machine
 * (measured on a 2-vCPU cloud VM), as long as a whole 1080p conversion on one
 * core.  Two bounded spins keep it off the common paths.  The caller, done
 * with its own claims, spins (at most CALLER_SPIN_NS, longer than one slice
 * takes) for helpers finishing their last slice before it sleeps.  A helper
 * spins for the next conversion only while conversions come in a burst,
 * less than BURST_GAP_NS apart (a benchmark, or frames converted back to
 * back): then it spins for at most BURST_GAP_NS, yielding its CPU to any
 * other runnable thread between checks.
 *
 * At a display's cadence (60-240 fps, 4-17 ms apart) a helper woken by the
 * conversion itself would arrive after the caller had done all the work, so
 * threads would buy nothing where the host needs them.  Instead, when
 * conversions come at a steady pace (a gap within a quarter of the previous
 * one), a helper sleeps on the clock until ANTICIPATE_LEAD_NS before the next
 * is due, then spins for it until ANTICIPATE_SLACK_NS after; if it is late,
 * the helper goes back to sleeping on the condition variable.  That costs
 * about ANTICIPATE_LEAD_NS of one core per frame (4% at 60 fps).  A
 * conversion that comes early is not missed: the caller starts alone and the
 * helper claims what is left when it wakes.
 *
 * One conversion uses the pool at a time.  A second thread that converts
 * while the pool is busy starts threads of its own rather than wait: two
 * converters (say, two capture sessions) must not serialise each other.
 * After fork() the child has no helpers; pthread_atfork() forgets them and
 * the child starts its own on first use.
 */
#include "nv12.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

/* Slices per thread: small enough that a late helper can still take a share,
 * large enough that claiming (one atomic operation) stays negligible. */
#define SLICES_PER_THREAD 4

/* The spins described above; see run_with_pool(). */
#define CALLER_SPIN_NS 200000
#define BURST_GAP_NS 2000000

/* Anticipating a steady cadence (above).  The lead covers the 40-460 us a
 * sleeping thread takes to run again on a VM; gaps over CADENCE_MAX_NS (below
 * 10 fps) are not worth a spinning core. */
#define ANTICIPATE_LEAD_NS 700000
#define ANTICIPATE_SLACK_NS 1000000
#define CADENCE_MAX_NS 100000000

/* 64 bits: a 32-bit long would overflow within seconds. */
static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Spins until *value differs from `old` or `budget_ns` have passed; returns
 * whether it changed.  The pause hint between checks frees the sibling
 * hyperthread; sched_yield() hands the CPU to any thread waiting for it. */
static int spin_while_equal(const unsigned long *value, unsigned long old, int64_t budget_ns)
{
    int64_t deadline = now_ns() + budget_ns;

    do {
        for (int i = 0; i < 64; i++) {
            if (__atomic_load_n(value, __ATOMIC_ACQUIRE) != old)
                return 1;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        sched_yield();
    } while (now_ns() < deadline);
    return 0;
}

static void convert_slice(const nv12_job *job, nv12_rows_fn rows, int chroma_rows, int slices,
                          int slice)
{
    rows(job, (int)((long)chroma_rows * slice / slices),
         (int)((long)chroma_rows * (slice + 1) / slices));
}

/* ------------------------------------------------------ one-off threads */

typedef struct one_off {
    const nv12_job *job;
    nv12_rows_fn rows;
    int chroma_rows, slices;
    int next; /* atomic: the next slice to claim */
} one_off;

static void *one_off_claims(void *arg)
{
    one_off *o = arg;
    int slice;

    while ((slice = __atomic_fetch_add(&o->next, 1, __ATOMIC_RELAXED)) < o->slices)
        convert_slice(o->job, o->rows, o->chroma_rows, o->slices, slice);
    return NULL;
}

/* If a thread cannot be started the caller's claims cover its share. */
static void run_with_new_threads(one_off *o, int helpers)
{
    pthread_t threads[NV12_MAX_THREADS];
    int started = 0;

    while (started < helpers && pthread_create(&threads[started], NULL, one_off_claims, o) == 0)
        started++;
    one_off_claims(o);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
}

/* ------------------------------------------------------------- the pool */

#define TICKET(generation, slices, next) \
    ((uint64_t)(uint32_t)(generation) << 32 | (uint64_t)(slices) << 16 | (uint64_t)(next))
#define TICKET_GENERATION(t) ((uint32_t)((t) >> 32))
#define TICKET_SLICES(t) ((int)(((t) >> 16) & 0xFFFF))
#define TICKET_NEXT(t) ((int)((t) & 0xFFFF))

static struct {
    pthread_mutex_t busy; /* held by the one conversion using the pool */
    pthread_mutex_t lock; /* taken to change generation and to sleep */
    pthread_cond_t wake, done;
    unsigned long generation; /* atomic: bumped once per conversion */
    int helpers;              /* threads started */
    int wanted;               /* atomic: helpers with an index below this take part */
    int64_t last_start_ns;    /* when the previous conversion started */
    int64_t last_gap_ns;      /* between the two conversions before it */
    int64_t helper_spin_ns;   /* atomic: how long helpers spin for the next one */
    int64_t next_due_ns;      /* atomic: when a steady cadence brings the next, or 0 */
    int atfork_registered;
    /* The current conversion, published before its ticket. */
    const nv12_job *job;
    nv12_rows_fn rows;
    int chroma_rows;
    uint64_t ticket;  /* atomic */
    unsigned long finished; /* atomic: slices done in this generation */
} pool = {.busy = PTHREAD_MUTEX_INITIALIZER,
          .lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

/* Claims and converts slices of `generation` until none is left. */
static void pool_claims(uint32_t generation)
{
    uint64_t ticket = __atomic_load_n(&pool.ticket, __ATOMIC_ACQUIRE);

    for (;;) {
        if (TICKET_GENERATION(ticket) != generation || TICKET_NEXT(ticket) >= TICKET_SLICES(ticket))
            return;
        /* On failure `ticket` is reloaded and checked again. */
        if (!__atomic_compare_exchange_n(&pool.ticket, &ticket, ticket + 1, 0, __ATOMIC_ACQUIRE,
                                         __ATOMIC_ACQUIRE))
            continue;
        int slices = TICKET_SLICES(ticket);
        convert_slice(pool.job, pool.rows, pool.chroma_rows, slices, TICKET_NEXT(ticket));
        if (__atomic_add_fetch(&pool.finished, 1, __ATOMIC_ACQ_REL) == (unsigned long)slices) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
        ticket = __atomic_load_n(&pool.ticket, __ATOMIC_ACQUIRE);
    }
}

/* What a helper is told at its start: its index, and the generation current
 * when it was created (a helper that is slow to start must still notice the
 * bump that follows, so it cannot read the generation itself). */
typedef struct helper_start {
    int index;
    unsigned long generation;
} helper_start;

static helper_start starts[NV12_MAX_THREADS];

/* Sleeps until shortly before `due`, then spins for the conversion after
 * `seen` until shortly after it; whether it came. */
static int wait_for_due(int64_t due, unsigned long seen)
{
    int64_t now = now_ns(), wake_at = due - ANTICIPATE_LEAD_NS;

    if (due <= now || due - now > CADENCE_MAX_NS)
        return 0;
    if (wake_at > now) {
        struct timespec t = {(time_t)(wake_at / 1000000000), (long)(wake_at % 1000000000)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) != 0)
            ; /* EINTR: a signal, sleep on */
    }
    return spin_while_equal(&pool.generation, seen, due + ANTICIPATE_SLACK_NS - now_ns());
}

static void *helper_main(void *arg)
{
    const helper_start *start = arg;
    unsigned long seen = start->generation;

    for (;;) {
        int64_t spin = __atomic_load_n(&pool.helper_spin_ns, __ATOMIC_RELAXED);
        int64_t due = __atomic_load_n(&pool.next_due_ns, __ATOMIC_RELAXED);
        int came = spin ? spin_while_equal(&pool.generation, seen, spin)
                        : due && wait_for_due(due, seen);
        if (!came) {
            pthread_mutex_lock(&pool.lock);
            while (__atomic_load_n(&pool.generation, __ATOMIC_RELAXED) == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        /* `wanted` is stored before the generation it belongs to. */
        seen = __atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE);
        if (start->index < __atomic_load_n(&pool.wanted, __ATOMIC_RELAXED))
            pool_claims((uint32_t)seen);
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
}

/* Called with pool.busy held. */
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
        starts[pool.helpers].generation = __atomic_load_n(&pool.generation, __ATOMIC_RELAXED);
        ok = pthread_create(&thread, &attr, helper_main, &starts[pool.helpers]) == 0;
        if (ok)
            pool.helpers++;
        pthread_mutex_unlock(&pool.lock);
        pthread_attr_destroy(&attr);
        if (!ok)
            return;
    }
}

/* Called with pool.busy held.  Helpers that could not be started leave their
 * share to the caller's claims. */
static void run_with_pool(const nv12_job *job, nv12_rows_fn rows, int chroma_rows, int slices,
                          int helpers)
{
    int64_t start_ns = now_ns();
    int64_t gap_ns = start_ns - pool.last_start_ns;
    int64_t change_ns = gap_ns - pool.last_gap_ns;
    int steady = gap_ns >= BURST_GAP_NS && gap_ns <= CADENCE_MAX_NS
                 && (change_ns < 0 ? -change_ns : change_ns) <= gap_ns / 4;

    pool.last_start_ns = start_ns;
    pool.last_gap_ns = gap_ns;
    /* Both are read by helpers after they finish with this conversion. */
    __atomic_store_n(&pool.helper_spin_ns, gap_ns < BURST_GAP_NS ? BURST_GAP_NS : 0,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&pool.next_due_ns, steady ? start_ns + gap_ns : 0, __ATOMIC_RELAXED);
    grow_pool(helpers);
    pthread_mutex_lock(&pool.lock);
    unsigned long next = __atomic_load_n(&pool.generation, __ATOMIC_RELAXED) + 1;
    uint32_t generation = (uint32_t)next;
    pool.job = job;
    pool.rows = rows;
    pool.chroma_rows = chroma_rows;
    __atomic_store_n(&pool.finished, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&pool.ticket, TICKET(generation, slices, 0), __ATOMIC_RELEASE);
    __atomic_store_n(&pool.wanted, helpers, __ATOMIC_RELAXED);
    __atomic_store_n(&pool.generation, next, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    pool_claims(generation);

    /* Only slices that helpers claimed and are still converting keep us:
     * at most one slice each, so a short spin usually sees them finish. */
    for (unsigned long done; (done = __atomic_load_n(&pool.finished, __ATOMIC_ACQUIRE))
                             < (unsigned long)slices;) {
        if (spin_while_equal(&pool.finished, done, CALLER_SPIN_NS))
            continue;
        pthread_mutex_lock(&pool.lock);
        while (__atomic_load_n(&pool.finished, __ATOMIC_ACQUIRE) < (unsigned long)slices)
            pthread_cond_wait(&pool.done, &pool.lock);
        pthread_mutex_unlock(&pool.lock);
    }
}

void nv12_run(const nv12_job *job, nv12_rows_fn rows, int threads)
{
    int chroma_rows = (job->height + 1) / 2;

    if (threads > chroma_rows)
        threads = chroma_rows;
    if (threads <= 1) {
        rows(job, 0, chroma_rows);
        return;
    }
    /* At most NV12_MAX_THREADS * SLICES_PER_THREAD (256), far inside the
     * ticket's 16 bits. */
    int slices = threads * SLICES_PER_THREAD;
    if (slices > chroma_rows)
        slices = chroma_rows;
    if (pthread_mutex_trylock(&pool.busy) == 0) {
        run_with_pool(job, rows, chroma_rows, slices, threads - 1);
        pthread_mutex_unlock(&pool.busy);
    } else {
        one_off o = {job, rows, chroma_rows, slices, 0};
        run_with_new_threads(&o, threads - 1);
    }
}
