// ctm: parse the command line, set up MPI and logging, dispatch the task. Errors of any task end here: the
// message goes to stderr, the exit code says what kind of failure it was, and MPI is aborted cleanly.
//   exit 0 ok · 1 error · 2 usage error · 3 task not implemented yet · 143 stopped by SIGTERM after
//   checkpointing
#include <boost/program_options.hpp>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/core/openblas_kernels.hpp"
#include "ctm/core/signal.hpp"
#include "ctm/dist/comm.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/tasks/task.hpp"

namespace po = boost::program_options;
using namespace ctm;
using namespace ctm::tasks;

namespace {

constexpr int kExitError = 1, kExitUsage = 2, kExitNotImplemented = 3, kExitStopped = 143;

void print_general_help(std::ostream& os) {
  os << "ctm " << CTM_VERSION
     << ": critical tokens and cDPO for LLM math reasoning (Lin et al., ICML 2025)\n\n"
        "usage: ctm <task> [options]          (or: ctm --task_name <task> [options])\n"
        "       mpirun -np N ctm <task> ...   (ranks split the work)\n"
        "       ctm <task> --help             (the options of a task)\n\ntasks:\n";
  for (const auto& t : all_tasks()) {
    std::string name = t.name;
    name.resize(22, ' ');
    os << "  " << name << t.summary << (t.run ? "" : "  [not implemented yet]") << "\n";
  }
}

// The task name is the first word, or the value of --task_name.
std::string find_task_name(std::vector<std::string>& args) {
  std::string from_word, from_flag;
  if (!args.empty() && !args[0].empty() && args[0][0] != '-') {
    from_word = args[0];
    args.erase(args.begin());
  }
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--task_name" && i + 1 < args.size()) from_flag = args[i + 1];
    if (args[i].rfind("--task_name=", 0) == 0) from_flag = args[i].substr(12);
  }
  if (!from_word.empty() && !from_flag.empty() && from_word != from_flag)
    throw UsageError(str("two task names given: '", from_word, "' and --task_name '", from_flag, "'"));
  return from_word.empty() ? from_flag : from_word;
}

bool wants_help(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") return true;
  return false;
}

int run(int argc, char** argv, dist::Comm& comm) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const bool rank0 = comm.rank() == 0;
  const std::string task_name = find_task_name(args);
  if (task_name.empty()) {
    if (wants_help(args)) {
      if (rank0) print_general_help(std::cout);
      return 0;
    }
    if (rank0) print_general_help(std::cerr);
    throw UsageError("no task given");
  }
  const TaskInfo* task = find_task(task_name);
  if (!task) throw UsageError(str("unknown task '", task_name, "' (ctm --help lists the tasks)"));

  CommonOptions common;
  if (wants_help(args)) {
    po::options_description all;
    describe_task_options(*task, common, all);
    if (rank0) std::cout << "ctm " << task->name << ": " << task->summary << "\n\n" << all << "\n";
    return 0;
  }
  const po::variables_map vm = parse_task_options(*task, args, common);

  setup_logging(comm.rank(), comm.size(), common.log_level);
  if (!task->run) {
    if (rank0) std::cerr << "ctm: task '" << task->name << "' is not implemented yet\n";
    return kExitNotImplemented;
  }
  configure_cpu_threads(comm.local_size());
  TaskContext ctx{common, vm, comm};
  return task->run(ctx);
}

}  // namespace

int main(int argc, char** argv) {
  restart_with_better_openblas_kernels(argv);  // before MPI: it may re-execute the program
  dist::MpiSession mpi(&argc, &argv);
  install_stop_handlers();
  auto& comm = mpi.world();
  const std::string who = comm.size() > 1 ? str("ctm (rank ", comm.rank(), ")") : std::string("ctm");
  int code = 0;
  try {
    code = run(argc, argv, comm);
  } catch (const UsageError& e) {
    std::cerr << who << ": error: " << e.what() << "\n";
    code = kExitUsage;
  } catch (const Stopped& s) {
    // Every rank agreed to stop (a collective decision), so MPI ends normally and mpirun/srun report 143.
    if (comm.rank() == 0) std::cerr << "ctm: stopped on request: " << s.kept << "\n";
    std::cout.flush();
    return kExitStopped;
  } catch (const Error& e) {
    std::cerr << who << ": error: " << e.what() << "\n";
    code = kExitError;
  } catch (const std::exception& e) {
    std::cerr << who << ": internal error: " << e.what() << "\n";
    code = kExitError;
  }
  std::cout.flush();
  if (code != 0 && code != kExitNotImplemented && comm.size() > 1) mpi.abort(code);
  return code;
}
