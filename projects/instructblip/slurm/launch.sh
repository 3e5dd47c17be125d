# Sourced by train.sbatch and eval.sbatch, in the repository root: runs "$@" (train.py or evaluate.py and its
# arguments) on every node of the allocation and sees it through a time limit or a pre-emption.
#
# srun starts one task per node, `python -m lavis_ib.cli.launch` (torchrun, with one clear line when a node does not
# join the rendezvous in time), and each starts the node's ranks, one per GPU. The nodes meet at a c10d rendezvous
# on the job's first node, named after the job (a requeued job keeps its id). Settings, from the environment:
#   PYTHON (python), GPUS_PER_NODE ($SLURM_GPUS_ON_NODE, else 8), RDZV_PORT (29500),
#   JOIN_TIMEOUT (900 s: how long the first nodes wait for the last one, also after a failure),
#   MAX_RESTARTS (0: torchrun restarts every node's ranks that often after a rank fails, resuming from the last
#   checkpoint), SHUTDOWN_TIMEOUT (480 s: how long the ranks have to save after a signal before torchrun kills them).
#
# Signals: USR1 (the sbatch files ask for it ahead of the time limit) and TERM (pre-emption, scancel) go to srun,
# which passes them to each node's launcher, which passes them to its ranks: a training run finishes its step, writes
# a checkpoint and exits; an evaluation stops, its finished predictions kept. After USR1 the job is requeued and the
# same command continues (run.resume=auto); after TERM the scheduler decides (a pre-empted --requeue job comes back).

head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
launcher=(--nnodes="$SLURM_NNODES" --nproc_per_node="${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}"
    --rdzv_backend=c10d --rdzv_endpoint="$head_node:${RDZV_PORT:-29500}" --rdzv_id="slurm-$SLURM_JOB_ID"
    --rdzv_conf=join_timeout="${JOIN_TIMEOUT:-900}" --max-restarts="${MAX_RESTARTS:-0}"
    --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1 --shutdown-timeout="${SHUTDOWN_TIMEOUT:-480}")

requeue=false step=
pass_on() {  # $1: the signal this script got; srun passes it to every node's launcher
    [[ $1 == USR1 ]] && requeue=true
    kill -s "$1" "$step" 2>/dev/null
}
trap 'pass_on USR1' USR1
trap 'pass_on TERM' TERM

# $SLURM_NODEID is each task's own, expanded on its node. --kill-on-bad-exit=0: a launcher exits 1 after passing on
# a signal, and the other nodes' ranks (rank 0 writing the checkpoint) must not be killed for it.
# shellcheck disable=SC2016
srun --kill-on-bad-exit=0 bash -c 'exec "$0" -m lavis_ib.cli.launch --node_rank="$SLURM_NODEID" "$@"' \
    "${PYTHON:-python}" "${launcher[@]}" "$@" &
step=$!
while true; do
    wait "$step"
    status=$?
    kill -0 "$step" 2>/dev/null || break  # wait returns early for a signal: the ranks are still saving
done
if $requeue; then
    echo "$(date '+%F %T') USR1 before the time limit: the ranks have stopped; requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
fi
exit "$status"
