# The reference for benches/beacon_vs_seed.py: seed 000's Elixir beacon, rebuilt from the code
# the seed shows (state %{nodes, requirements, resources}, register/2, get_requirements/3,
# handle_call/3, handle_info nodeup/nodedown) and the private helpers it describes but does
# not show (add_node, add_resource, add_requirement, find_requirements, find_resources).
# Like the seed it keeps offering providers that went offline and appends on re-register.
#
#   elixir --name seedbeacon@127.0.0.1 --cookie bench benches/seed_beacon.exs
defmodule BeaconServer.Beacon do
  use GenServer
  require Logger

  def start_link(opts), do: GenServer.start_link(__MODULE__, :ok, opts)

  @impl true
  def init(:ok) do
    :net_kernel.monitor_nodes(true)
    {:ok, %{nodes: %{}, requirements: [], resources: []}}
  end

  defp register({node, module, resource, requirement},
                state = %{nodes: connected_nodes, resources: resources, requirements: requirements}) do
    {:ok,
     %{state
       | nodes: add_node(node, connected_nodes),
         resources: add_resource(node, module, resource, resources),
         requirements:
           if requirement != [] do
             add_requirement(node, module, requirement, requirements)
           else
             requirements
           end}}
  end

  defp add_node(node, nodes), do: Map.put(nodes, node, :online)
  defp add_resource(node, module, resource, resources),
    do: [%{module: module, name: resource, node: node} | resources]
  defp add_requirement(node, module, requirement, requirements),
    do: [%{module: module, name: requirement, node: node} | requirements]

  defp get_requirements(node, requirements, resources) do
    req = find_requirements(node, requirements)
    find_resources(req, resources)
  end

  defp find_requirements(node, requirements) do
    requirements |> Enum.filter(&(&1.node == node)) |> Enum.flat_map(& &1.name)
  end

  defp find_resources(names, resources) do
    Enum.filter(resources, &(&1.name in names))
  end

  @impl true
  def handle_info({:nodeup, _node}, state), do: {:noreply, state}
  def handle_info({:nodedown, node}, state = %{nodes: node_list}) do
    {:noreply, %{state | nodes: Map.put(node_list, node, :offline)}}
  end

  @impl true
  def handle_call({:register, credentials}, _from, state) do
    {:ok, new_state} = register(credentials, state)
    {:reply, :ok, new_state}
  end

  def handle_call({:get_requirements, node}, _from,
                  state = %{resources: resources, requirements: requirements}) do
    offer = get_requirements(node, requirements, resources)
    {:reply, (case length(offer) do 0 -> nil; _ -> {:ok, offer} end), state}
  end
end

{:ok, _} = BeaconServer.Beacon.start_link(name: BeaconServer.Beacon)
IO.puts("ready")
Process.sleep(:infinity)
