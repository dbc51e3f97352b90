package cgroupfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// GenerateTree writes a fake cgroup tree with n Docker containers under
// dir, laid out as a host of the given mode has it, for benchmarks (here
// and in other packages) and tests: on ModeUnified the containers use the
// systemd driver (system.slice/docker-<id>.scope); on ModeLegacy and
// ModeHybrid the cgroupfs driver (memory/docker/<id>). Each container has
// the memory files FS.Memory reads, with full-length memory.stat files in
// the format of kernel 6.x, so parsing costs what it costs on a real host.
//
// The ids are deterministic (the same n gives the same ids) and returned
// sorted. Container i (in generation order) has usage (32 + i%256) MiB +
// i pages, a fifth of it inactive file cache, no limit when i%3 == 0 and
// 256 MiB otherwise, i limit hits when i%3 == 1, and one OOM kill when
// i%7 == 1.
func GenerateTree(dir string, mode Mode, n int) ([]string, error) {
	if n < 0 {
		return nil, errors.New("cgroupfs: GenerateTree: negative count")
	}
	var memRoot, parent string
	switch mode {
	case ModeUnified:
		memRoot = dir
		parent = filepath.Join(dir, systemdParent)
		if err := writeFiles(dir, map[string]string{
			"cgroup.controllers":     "cpuset cpu io memory hugetlb pids rdma misc\n",
			"cgroup.subtree_control": "cpuset cpu io memory pids\n",
		}); err != nil {
			return nil, err
		}
	case ModeLegacy, ModeHybrid:
		memRoot = filepath.Join(dir, "memory")
		parent = filepath.Join(memRoot, cgroupfsParent)
		if mode == ModeHybrid {
			if err := writeFiles(filepath.Join(dir, "unified"), map[string]string{"cgroup.controllers": ""}); err != nil {
				return nil, err
			}
		}
		if err := writeFiles(memRoot, map[string]string{
			"memory.usage_in_bytes": "1708249088\n",
			"memory.limit_in_bytes": "9223372036854771712\n",
			"memory.use_hierarchy":  "1\n",
		}); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("cgroupfs: GenerateTree: invalid mode")
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		sum := sha256.Sum256([]byte("exit137-exporter/cgroupfs.GenerateTree/" + strconv.Itoa(i)))
		id := hex.EncodeToString(sum[:])
		ids = append(ids, id)

		const mib = 1 << 20
		usage := uint64(32+i%256)*mib + uint64(i)*4096
		inactive := usage / 5 &^ 4095
		anon := usage - inactive - inactive/2
		limit := uint64(256 * mib)
		unlimited := i%3 == 0
		var hits, kills uint64
		if i%3 == 1 {
			hits = uint64(i)
		}
		if i%7 == 1 {
			kills = 1
		}
		st := statValues{i: i, usage: usage, anon: anon, inactive: inactive, active: inactive / 2}

		var cdir string
		var files map[string]string
		u := func(v uint64) string { return strconv.FormatUint(v, 10) + "\n" }
		if mode == ModeUnified {
			cdir = filepath.Join(parent, scopePrefix+id+scopeSuffix)
			max := "max\n"
			if !unlimited {
				max = u(limit)
			}
			files = map[string]string{
				"memory.current": u(usage),
				"memory.max":     max,
				"memory.peak":    u(usage + uint64(i%5)*mib),
				"memory.events": "low 0\nhigh 0\nmax " + strconv.FormatUint(hits, 10) +
					"\noom " + strconv.FormatUint(kills, 10) +
					"\noom_kill " + strconv.FormatUint(kills, 10) + "\noom_group_kill 0\n",
				"memory.stat":  st.format(v2StatKeys),
				"memory.low":   "0\n",
				"memory.high":  "max\n",
				"cgroup.procs": u(uint64(1000 + i)),
			}
		} else {
			cdir = filepath.Join(parent, id)
			lim := u(9223372036854771712)
			if !unlimited {
				lim = u(limit)
			}
			files = map[string]string{
				"memory.usage_in_bytes":     u(usage),
				"memory.limit_in_bytes":     lim,
				"memory.max_usage_in_bytes": u(usage + uint64(i%5)*mib),
				"memory.failcnt":            u(hits),
				"memory.oom_control":        "oom_kill_disable 0\nunder_oom 0\noom_kill " + u(kills),
				"memory.stat":               st.format(v1StatKeys),
				"memory.use_hierarchy":      "1\n",
				"cgroup.procs":              u(uint64(1000 + i)),
			}
		}
		if err := writeFiles(cdir, files); err != nil {
			return nil, err
		}
	}
	sort.Strings(ids)
	return ids, nil
}

func writeFiles(dir string, files map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Key order of memory.stat as kernel 6.8 prints it, v1 and v2.
var (
	v1StatKeys = []string{"cache", "rss", "rss_huge", "shmem", "mapped_file", "dirty", "writeback",
		"workingset_refault_anon", "workingset_refault_file", "swap", "swapcached", "pgpgin", "pgpgout",
		"pgfault", "pgmajfault", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
		"hierarchical_memory_limit", "hierarchical_memsw_limit", "total_cache", "total_rss", "total_rss_huge",
		"total_shmem", "total_mapped_file", "total_dirty", "total_writeback", "total_workingset_refault_anon",
		"total_workingset_refault_file", "total_swap", "total_swapcached", "total_pgpgin", "total_pgpgout",
		"total_pgfault", "total_pgmajfault", "total_inactive_anon", "total_active_anon", "total_inactive_file",
		"total_active_file", "total_unevictable"}
	v2StatKeys = []string{"anon", "file", "kernel", "kernel_stack", "pagetables", "sec_pagetables", "percpu",
		"sock", "vmalloc", "shmem", "zswap", "zswapped", "file_mapped", "file_dirty", "file_writeback",
		"swapcached", "anon_thp", "file_thp", "shmem_thp", "inactive_anon", "active_anon", "inactive_file",
		"active_file", "unevictable", "slab_reclaimable", "slab_unreclaimable", "slab",
		"workingset_refault_anon", "workingset_refault_file", "workingset_activate_anon",
		"workingset_activate_file", "workingset_restore_anon", "workingset_restore_file",
		"workingset_nodereclaim", "pgdemote_kswapd", "pgdemote_direct", "pgdemote_khugepaged", "pgscan",
		"pgsteal", "pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged", "pgsteal_kswapd", "pgsteal_direct",
		"pgsteal_khugepaged", "pgfault", "pgmajfault", "pgrefill", "pgactivate", "pgdeactivate", "pglazyfree",
		"pglazyfreed", "zswpin", "zswpout", "zswpwb", "thp_fault_alloc", "thp_collapse_alloc", "thp_swpout",
		"thp_swpout_fallback"}
)

type statValues struct {
	i                             int
	usage, anon, inactive, active uint64
}

func (s statValues) format(keys []string) string {
	b := make([]byte, 0, 2048)
	for k, key := range keys {
		var v uint64
		switch key {
		case "anon", "rss", "total_rss", "inactive_anon", "total_inactive_anon":
			v = s.anon
		case "file", "cache", "total_cache":
			v = s.inactive + s.active
		case "inactive_file", "total_inactive_file":
			v = s.inactive
		case "active_file", "total_active_file":
			v = s.active
		case "hierarchical_memory_limit", "hierarchical_memsw_limit":
			v = 9223372036854771712
		default:
			// Plausible non-zero counters, so the file is as long as a
			// busy container's.
			v = uint64((s.i+1)*(k+7)*7919) % 100000000
		}
		b = append(b, key...)
		b = append(b, ' ')
		b = strconv.AppendUint(b, v, 10)
		b = append(b, '\n')
	}
	return string(b)
}
