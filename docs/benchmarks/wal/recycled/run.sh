#!/bin/bash
cd /work/main
rm -rf /tmp/cost/log && mkdir -p /tmp/cost/log
target/release/hotwire --listen 127.0.0.1:19102 --storage fs:///tmp/cost/log --metrics-listen 127.0.0.1:19103 > /tmp/cost/broker3.log 2>&1 &
B=$!
sleep 2
target/release/hotwire-bench run -w bench/workloads/fragmented.toml --bootstrap 127.0.0.1:19102 --duration 150s --quiet -o /tmp/cost/warm3 > /tmp/cost/warm3.log 2>&1
curl -s 127.0.0.1:19103/metrics > /tmp/cost/m-before.txt
target/release/hotwire-bench compare -w bench/workloads/fragmented.toml --rounds 2 --quiet \
  --bootstrap-a 127.0.0.1:19102 --bootstrap-b 127.0.0.1:19102 --acks-a 1 \
  --label-a acks-1 --label-b acks-all --limits-dir /tmp/cost -o /tmp/cost/fragmented-warm3 > /tmp/cost/fragmented-warm3.log 2>&1
curl -s 127.0.0.1:19103/metrics > /tmp/cost/m-after.txt
kill $B
echo done
