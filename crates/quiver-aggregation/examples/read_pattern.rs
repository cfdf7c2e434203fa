//! How fast this machine reads the gradient's access pattern with no arithmetic but a sum: the
//! forecasts as J·K columns of n rows (the table's layout), visited a block of 512 rows at a time
//! in shuffled block order, every level's J columns per block, levels split over the cores — the
//! pattern of `quantile-aggregation`'s Adam epochs — beside one sequential pass over the same
//! bytes. `cargo run --release -p quiver-aggregation --example read_pattern` (n = 10^5, J = 10,
//! K = 99, 30 epochs: 23.8 GB read).

use rayon::prelude::*;
use std::time::Instant;

fn main() {
    let (n, jj, kk, epochs, block) = (100_000usize, 10usize, 99usize, 30usize, 512usize);
    let columns: Vec<Vec<f64>> = (0..jj * kk).map(|c| (0..n).map(|i| ((i * 31 + c) % 97) as f64).collect()).collect();
    let blocks = n.div_ceil(block);
    // a fixed shuffle of the blocks
    let mut order: Vec<usize> = (0..blocks).collect();
    let mut st = 7u64;
    for i in (1..blocks).rev() {
        st = st.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        order.swap(i, (st >> 33) as usize % (i + 1));
    }
    let bytes = (epochs * n * jj * kk * 8) as f64;
    let t = Instant::now();
    let mut total = 0.0;
    for _ in 0..epochs {
        for &b in &order {
            let rows = b * block..((b + 1) * block).min(n);
            // levels over the cores, as the gradient splits them
            total += (0..kk)
                .into_par_iter()
                .map(|k| {
                    let mut lanes = [0.0f64; 8];
                    for j in 0..jj {
                        for tile in columns[j * kk + k][rows.clone()].chunks_exact(8) {
                            for i in 0..8 {
                                lanes[i] += tile[i];
                            }
                        }
                    }
                    lanes.iter().sum::<f64>()
                })
                .sum::<f64>();
        }
    }
    let pattern = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut seq = 0.0;
    for _ in 0..epochs {
        seq += columns
            .par_iter()
            .map(|c| {
                let mut lanes = [0.0f64; 8];
                for tile in c.chunks_exact(8) {
                    for i in 0..8 {
                        lanes[i] += tile[i];
                    }
                }
                lanes.iter().sum::<f64>()
            })
            .sum::<f64>();
    }
    let sequential = t.elapsed().as_secs_f64();
    println!(
        "{} threads: the gradient's pattern {pattern:.2} s ({:.1} GB/s), sequential {sequential:.2} s ({:.1} GB/s) (sums {total} {seq})",
        rayon::current_num_threads(),
        bytes / pattern / 1e9,
        bytes / sequential / 1e9
    );
}
