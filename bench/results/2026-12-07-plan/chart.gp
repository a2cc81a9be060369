
set terminal pngcairo size 1400,700 noenhanced font "sans,10"
set output 'bench/results/2026-12-07-plan/chart.png'
set title "hoardfs benchmark (quick): throughput, MB/s, median of 3 runs — 2 cores, 24 GiB, kernel 6.18.44-fc-v1272"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [10:*]
set bmargin 5
set ylabel "MB/s (log scale)"
set grid ytics
set key top left
set xtics nomirror
plot 'bench/results/2026-12-07-plan/chart.dat' using 2:xtic(1) title 'hoardfs' lc rgb '#1f77b4',      '' using 3 title 's3fs' lc rgb '#ff7f0e',      '' using 4 title 'rclone' lc rgb '#2ca02c',      '' using 5 title 'limit (network / dd of cache file / dd of cached file)' lc rgb '#7f7f7f'
