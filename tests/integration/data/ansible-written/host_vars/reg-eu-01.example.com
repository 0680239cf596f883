registry:
  data_dir: /srv/registry
backup: true
