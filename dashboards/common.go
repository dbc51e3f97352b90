package dashboards

import (
	"fmt"
	"slices"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// Recording rules from alerts/exit137.rules.yml that the dashboards read.
const (
	usagePerLimit      = "instance_name:exit137_container_memory_usage_per_limit:ratio"
	workingSetPerLimit = "instance_name:exit137_container_memory_working_set_per_limit:ratio"
	exitsLast10m       = "instance_name:exit137_container_exits:increase10m"
)

// Grafana unit ids used here that the units package names differently.
const unitNone = "none"

// ds is the data source of every panel, query and variable: the datasource
// template variable, so the JSON imports and provisions anywhere.
var ds = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// gen carries the configuration and hands out panel ids, so that every
// panel has a stable id (links with viewPanel= stay valid) in build order.
type gen struct {
	cfg Config
	id  uint32
}

func (g *gen) nextID() uint32 {
	g.id++
	return g.id
}

// host selects the exporter's series of the chosen jobs and instances.
func (g *gen) host(extra ...string) string {
	return "{" + strings.Join(append([]string{`job=~"$job"`, `instance=~"$instance"`}, extra...), ", ") + "}"
}

// kubeMatchers select the chosen Kubernetes namespaces, pods and
// containers; their "All" (.*) also matches the empty labels of Docker's
// and Podman's containers.
var kubeMatchers = []string{`namespace=~"$namespace"`, `pod=~"$pod"`, `container=~"$container"`}

// ctr selects the series of the chosen containers.
func (g *gen) ctr(extra ...string) string {
	return g.host(append(append(slices.Clone(kubeMatchers), `name=~"$name"`), extra...)...)
}

// kubeCauses are the causes only the Kubernetes API tells.
const kubeCauses = "probe|eviction|preemption|deletion"

// causes lists the verdicts for the panels' descriptions.
const causes = "oom, systemd_partof, manual, disk or unknown for a SIGKILL, and on Kubernetes probe (a liveness or startup probe kill), " +
	"eviction, preemption or deletion (past the grace period); none for other exits"

// ri is the range of rate() and increase().
func (g *gen) ri() string { return "[" + g.cfg.RateInterval + "]" }

func (g *gen) dashboard(title, uid, description string) *dashboard.DashboardBuilder {
	//nolint:staticcheck // SA1019: the classic model is what file provisioning and the import screen read.
	return dashboard.NewDashboardBuilder(g.cfg.TitlePrefix+title).
		Uid(uid).
		Description(description).
		Tags(g.cfg.Tags).
		Readonly().
		Refresh(g.cfg.Refresh).
		Time(g.cfg.TimeFrom, "now").
		Timezone(common.TimeZoneUtc).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").
			Label("Data source").
			Type("prometheus")).
		WithVariable(g.queryVar("job", "Job",
			fmt.Sprintf("label_values(exit137_build_info{%s}, job)", g.cfg.JobSelector),
			"Scrape jobs of exit137-exporter. All means every job the dashboard is configured for.", "")).
		WithVariable(g.queryVar("instance", "Instance",
			`label_values(exit137_build_info{job=~"$job"}, instance)`,
			"Hosts (exporter targets).", allValues)).
		WithVariable(g.queryVar("namespace", "Namespace",
			`label_values(exit137_container_info{job=~"$job", instance=~"$instance"}, namespace)`,
			"Kubernetes namespaces. All includes the containers that are not Kubernetes'.", allOrNone)).
		WithVariable(g.queryVar("pod", "Pod",
			`label_values(exit137_container_info{job=~"$job", instance=~"$instance", namespace=~"$namespace"}, pod)`,
			"Kubernetes pods of the selected namespaces.", allOrNone)).
		WithVariable(g.queryVar("container", "Pod container",
			`label_values(exit137_container_info{job=~"$job", instance=~"$instance", namespace=~"$namespace", pod=~"$pod"}, container)`,
			"Container names within the selected Kubernetes pods.", allOrNone)).
		WithVariable(g.queryVar("name", "Container",
			`label_values(exit137_container_info{job=~"$job", instance=~"$instance", namespace=~"$namespace", pod=~"$pod", container=~"$container"}, name)`,
			"Container names seen in the selected time range, removed containers included; "+
				"a Kubernetes container's is namespace/pod/container.", allValues))
}

// The "All" values of the variables: every value without listing them,
// and for the Kubernetes labels the empty one too. The job variable has
// none, so its "All" stays within cfg.JobSelector.
const (
	allValues = ".+"
	allOrNone = ".*"
)

// queryVar is a multi-value variable with "All", whose regex is allValue
// unless that is empty.
func (g *gen) queryVar(name, label, query, description, allValue string) *dashboard.QueryVariableBuilder {
	v := dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Description(description).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
		Definition(query).
		Datasource(ds).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
			Value: dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}},
		})
	if allValue != "" {
		v = v.AllValue(allValue)
	}
	return v
}

// finish clears the links' placement, which the SDK sets to
// "inControlsMenu" (Grafana 12's hidden menu): the links between the
// dashboards belong above the panels, where every Grafana shows them.
func finish(d dashboard.Dashboard, err error) (dashboard.Dashboard, error) {
	if err != nil {
		return d, err
	}
	for i := range d.Links {
		d.Links[i].Placement = nil
	}
	for _, p := range d.Panels {
		if p.Panel != nil && p.Panel.FieldConfig != nil {
			for i := range p.Panel.FieldConfig.Defaults.Links {
				p.Panel.FieldConfig.Defaults.Links[i].Placement = nil
			}
		}
	}
	return d, nil
}

// link is a dashboard link to another exit137 dashboard, keeping the time
// range and the variables.
func link(title, uid, tooltip string) *dashboard.DashboardLinkBuilder {
	return dashboard.NewDashboardLinkBuilder(title).
		Type(dashboard.DashboardLinkTypeLink).
		Url("/d/" + uid).
		Tooltip(tooltip).
		Icon("dashboard").
		IncludeVars(true).
		KeepTime(true).
		AsDropdown(false).
		TargetBlank(false).
		Tags([]string{})
}

// containerLink is a data link from a series (or table row) of one
// container to its per-container view, keeping the data source and time.
func (g *gen) containerLink(nameRef, instanceRef, jobRef string) []cog.Builder[dashboard.DashboardLink] {
	url := fmt.Sprintf("/d/%s?var-name=%s&var-instance=%s&var-job=%s&${datasource:queryparam}&${__url_time_range}",
		g.cfg.ContainerUID(), nameRef, instanceRef, jobRef)
	return []cog.Builder[dashboard.DashboardLink]{
		dashboard.NewDashboardLinkBuilder("Open " + nameRef + " in the per-container view").
			Type(dashboard.DashboardLinkTypeLink).
			Url(url).
			Tags([]string{}),
	}
}

func (g *gen) seriesLink() []cog.Builder[dashboard.DashboardLink] {
	return g.containerLink("${__field.labels.name}", "${__field.labels.instance}", "${__field.labels.job}")
}

func (g *gen) rowLink() []cog.Builder[dashboard.DashboardLink] {
	return g.containerLink("${__data.fields.name}", "${__data.fields.instance}", "${__data.fields.job}")
}

func (g *gen) row(title string) *dashboard.RowBuilder {
	return dashboard.NewRowBuilder(title).Id(g.nextID())
}

func query(refID, expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		Datasource(ds).
		RefId(refID).
		Expr(expr).
		LegendFormat(legend)
}

// q is a range query.
func q(refID, expr, legend string) *prometheus.DataqueryBuilder {
	return query(refID, expr, legend).Range()
}

// instant is an instant query, for stats, bar gauges and tables.
func instant(refID, expr, legend string) *prometheus.DataqueryBuilder {
	return query(refID, expr, legend).Instant()
}

// sumBy is PromQL "sum by (by) (fn(series[ri]))": fn, increase or rate,
// of a counter over the rate interval, summed by the labels in by.
func (g *gen) sumBy(by, fn, series string) string {
	return "sum by (" + by + ") (" + fn + "(" + series + g.ri() + "))"
}

func (g *gen) thresholds() *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().
		Mode(dashboard.ThresholdsModeAbsolute).
		Steps([]dashboard.Threshold{
			{Value: nil, Color: "green"},
			{Value: cog.ToPtr(g.cfg.WarningRatio), Color: "orange"},
			{Value: cog.ToPtr(g.cfg.CriticalRatio), Color: "red"},
		})
}

// panelBuilder is what every panel builder of the SDK has, each method
// returning the builder itself.
type panelBuilder[B any] interface {
	Id(id uint32) B
	Title(title string) B
	Description(description string) B
	Datasource(datasource common.DataSourceRef) B
	Unit(unit string) B
	Span(w uint32) B
	Height(h uint32) B
}

// panel sets what every panel here has: the next id, title, description,
// the data source, unit and size (w of 24 columns, h rows).
func panel[B panelBuilder[B]](g *gen, b B, title, description, unit string, w, h uint32) B {
	return b.Id(g.nextID()).
		Title(title).
		Description(description).
		Datasource(ds).
		Unit(unit).
		Span(w).
		Height(h)
}

func (g *gen) timeseries(title, description, unit string, w, h uint32) *timeseries.PanelBuilder {
	return panel(g, timeseries.NewPanelBuilder(), title, description, unit, w, h).
		LineWidth(1).
		FillOpacity(0).
		Legend(common.NewVizLegendOptionsBuilder().
			ShowLegend(true).
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			Calcs([]string{"lastNotNull", "max"})).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending))
}

// ratio is a time series of a 0–1 ratio with the threshold lines drawn.
func (g *gen) ratio(title, description string, w, h uint32) *timeseries.PanelBuilder {
	return g.timeseries(title, description, units.PercentUnit, w, h).
		Min(0).
		Max(1).
		Thresholds(g.thresholds()).
		ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeDashed))
}

// events is a stacked bar chart of counts per interval.
func (g *gen) events(title, description string, w, h uint32) *timeseries.PanelBuilder {
	return g.timeseries(title, description, units.Short, w, h).
		Min(0).
		Decimals(0).
		DrawStyle(common.GraphDrawStyleBars).
		FillOpacity(80).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).
		Legend(common.NewVizLegendOptionsBuilder().
			ShowLegend(true).
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			Calcs([]string{"sum"}))
}

// topRatio is a bar gauge of the containers closest to their limit.
func (g *gen) topRatio(title, description, record string, w, h uint32) *bargauge.PanelBuilder {
	return panel(g, bargauge.NewPanelBuilder(), title, description, units.PercentUnit, w, h).
		Min(0).
		Max(1).
		Thresholds(g.thresholds()).
		DisplayMode(common.BarGaugeDisplayModeGradient).
		Orientation(common.VizOrientationHorizontal).
		ShowUnfilled(true).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false)).
		DataLinks(g.seriesLink()).
		WithTarget(instant("A",
			fmt.Sprintf("topk(%d, %s%s)", g.cfg.TopK, record, g.ctr()),
			"{{name}} on {{instance}}"))
}

func (g *gen) stat(title, description, unit string, w, h uint32) *stat.PanelBuilder {
	return panel(g, stat.NewPanelBuilder(), title, description, unit, w, h).
		GraphMode(common.BigValueGraphModeNone).
		ColorMode(common.BigValueColorModeValue).
		TextMode(common.BigValueTextModeValueAndName).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false))
}

// ratioStat is a stat of a 0–1 ratio recording rule per container,
// coloured by the thresholds.
func (g *gen) ratioStat(title, description, record string, w, h uint32) *stat.PanelBuilder {
	return g.stat(title, description, units.PercentUnit, w, h).
		Min(0).Max(1).
		Thresholds(g.thresholds()).
		ColorMode(common.BigValueColorModeBackground).
		WithTarget(instant("A", record+g.ctr(), "{{name}}"))
}

// upDown maps 1 to a green "up" and 0 to a red "down".
func upDown(up, down string) []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{
		ValueMap: &dashboard.ValueMap{
			Type: dashboard.MappingTypeValueToText,
			Options: map[string]dashboard.ValueMappingResult{
				"0": {Text: cog.ToPtr(down), Color: cog.ToPtr("red"), Index: cog.ToPtr[int32](0)},
				"1": {Text: cog.ToPtr(up), Color: cog.ToPtr("green"), Index: cog.ToPtr[int32](1)},
			},
		},
	}}
}

// labelTable is a table of instant query results, one row per series and a
// column per label, without the time column.
func (g *gen) labelTable(title, description, unit string, w, h uint32, rename map[string]string) *table.PanelBuilder {
	return panel(g, table.NewPanelBuilder(), title, description, unit, w, h).
		Filterable(true).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"})).
		WithTransformation(dashboard.DataTransformerConfig{
			Id: "organize",
			Options: map[string]any{
				"excludeByName": map[string]bool{"Time": true, "__name__": true},
				"renameByName":  rename,
			},
		})
}

// recentExits is a table of the selected containers' exits in the last
// 10 minutes, counted by the recording rule the alerts use; extra narrows
// them (to some causes).
func (g *gen) recentExits(title, description string, w uint32, extra ...string) *table.PanelBuilder {
	return g.labelTable(title, description, units.Short, w, 7, map[string]string{"Value": "exits"}).
		WithTarget(instant("A", exitsLast10m+g.ctr(extra...)+" > 0", "").Format(prometheus.PromQueryFormatTable))
}

// limitStyle draws the series of query refID as a dashed red line.
var limitStyle = []dashboard.DynamicConfigValue{
	{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}},
	{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": "red"}},
}
