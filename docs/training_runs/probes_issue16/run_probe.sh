cd "$(git rev-parse --show-toplevel)"  # issue 16 probe: two 10-min arms side by side, 1 thread each
COMMON=(data.sets.0.format=packed data.sets.0.root=data_gen/packed/nwpu data.sets.1.format=packed
  data.sets.1.root=data_gen/packed/dubai time_limit_s=600 optim.schedule_time_s=600 optim.total_steps=10000
  threads=1 eval_every=1000 save_every_steps=0 progress=false)
NEW=(augment.scale_crop=0 augment.zoom=0.5 "augment.zoom_range=[0.5,2.0]" augment.lowres=0.2 augment.lowres_max=3.0
  augment.brightness=0.2 augment.contrast=0.2 augment.colour=0.8 augment.gamma=0.3 augment.saturation=0.3
  augment.hue_deg=15 augment.channel_gain=0.1 "loss.text_weight_range=[0.5,1.5]")
export PYTHONPATH=$PWD OMP_NUM_THREADS=1
.venv/bin/python -m training train --config training/configs/nano_default_2h.yaml "${COMMON[@]}" out_dir=runs/probe16_old > runs/probe16_old.log 2>&1 &
.venv/bin/python -m training train --config training/configs/nano_default_2h.yaml "${COMMON[@]}" "${NEW[@]}" out_dir=runs/probe16_new > runs/probe16_new.log 2>&1 &
wait
for a in old new; do for s in nwpu dubai; do
  .venv/bin/python -m training eval --checkpoint runs/probe16_$a/final.safetensors --dataset packed --root data_gen/packed/$s --split val --by-type --max-samples 300 --threads 1 --batch-size 16 2>/dev/null | tail -1 > runs/probe16_${a}_eval_$s.json &
done; done; wait; echo done
