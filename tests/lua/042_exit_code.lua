-- os.exit with a number: the process exit status is that number. Output
-- written before exiting (buffered by C stdio) must still arrive.
io.write("partial line without newline; ")
print("exiting with status 3")
io.stderr:write("a line on stderr\n")
os.exit(3)
print("not reached")
