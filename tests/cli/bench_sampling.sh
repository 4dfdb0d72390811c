# ctm bench sampling: the table with both bounds measured in the same run, on a reduced run of the CPU cases;
# option errors. (Speed itself is not asserted: the bench reports it.)
source "$(dirname "$0")/lib.bash"

expect_exit 0 "$CTM" bench sampling --cases b1,tiny --prompt_tokens 4 --new_tokens 4
expect_output "compute bound \(the best of these\): [0-9.]+ GFLOP/s; memory bandwidth \(1 GiB read by the workers\): [0-9.]+ GB/s"
expect_output "random model: Llama d 768, 12 layers, 12/12 heads"
expect_output "of FLOP bound \| of bandwidth bound"
expect_output "^\| batch 1 \| 1 \| 4 \| 4 \| [0-9.]+ \| [0-9]+ \| [0-9]+ \|"
expect_output "^\| tiny, 64 samples \| 64 \|"
expect_output "^decode_b1_fraction_of_bandwidth_bound: 0*[0-9]+\.[0-9]{3}$"

expect_exit 2 "$CTM" bench sampling --shape 3b
expect_output "--shape must be 110m or 8b"
expect_exit 2 "$CTM" bench sampling --cases b1,b512
expect_output "unknown case 'b512'"
finish
